-- Credit notes: money given back on a finalized invoice. Today they are issued automatically when a subscription
-- paid in advance is terminated before its period ends (Lago's `order_cancellation`), as credit: the balance pays
-- the customer's next invoices of the same currency, oldest note first.
CREATE TABLE credit_notes (
    id                                     uuid PRIMARY KEY,
    organization_id                        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id                            uuid NOT NULL REFERENCES customers (id),
    invoice_id                             uuid NOT NULL REFERENCES invoices (id),
    subscription_id                        uuid REFERENCES subscriptions (id),
    -- Rank among the notes of the invoice: the number is "<invoice number>-CN001".
    sequential_id                          integer NOT NULL,
    number                                 text NOT NULL,
    issuing_date                           date NOT NULL,
    reason                                 text NOT NULL,
    description                            text,
    automatic                              boolean NOT NULL DEFAULT false,
    credit_status                          text,
    refund_status                          text,
    currency                               text NOT NULL,
    total_amount_cents                     bigint NOT NULL,
    credit_amount_cents                    bigint NOT NULL,
    refund_amount_cents                    bigint NOT NULL DEFAULT 0,
    offset_amount_cents                    bigint NOT NULL DEFAULT 0,
    balance_amount_cents                   bigint NOT NULL,
    taxes_amount_cents                     bigint NOT NULL,
    precise_taxes_amount_cents             numeric NOT NULL,
    taxes_rate                             numeric NOT NULL,
    sub_total_excluding_taxes_amount_cents bigint NOT NULL,
    coupons_adjustment_amount_cents        bigint NOT NULL,
    precise_coupons_adjustment_amount_cents numeric NOT NULL,
    voided_at                              timestamptz,
    created_at                             timestamptz NOT NULL DEFAULT now(),
    updated_at                             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (invoice_id, sequential_id)
);
CREATE INDEX credit_notes_list ON credit_notes (organization_id, created_at DESC);
-- Available balances of a customer, oldest first, for the next invoices.
CREATE INDEX credit_notes_available ON credit_notes (customer_id, created_at) WHERE balance_amount_cents > 0;
-- A termination gives back its unused period once, however often it is retried.
CREATE UNIQUE INDEX credit_notes_termination ON credit_notes (subscription_id)
    WHERE reason = 'order_cancellation' AND automatic;

CREATE TABLE credit_note_items (
    id                   uuid PRIMARY KEY,
    credit_note_id       uuid NOT NULL REFERENCES credit_notes (id) ON DELETE CASCADE,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    fee_id               uuid NOT NULL REFERENCES fees (id),
    amount_cents         bigint NOT NULL,
    precise_amount_cents numeric NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_note_items_note ON credit_note_items (credit_note_id);
CREATE INDEX credit_note_items_fee ON credit_note_items (fee_id);

CREATE TABLE credit_note_taxes (
    id                uuid PRIMARY KEY,
    credit_note_id    uuid NOT NULL REFERENCES credit_notes (id) ON DELETE CASCADE,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    tax_id            uuid REFERENCES taxes (id),
    tax_code          text NOT NULL,
    tax_name          text NOT NULL,
    tax_description   text,
    tax_rate          numeric NOT NULL,
    amount_cents      bigint NOT NULL,
    base_amount_cents bigint NOT NULL,
    position          integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_note_taxes_note ON credit_note_taxes (credit_note_id, position);

-- An invoice's credits are coupons or credit notes.
ALTER TABLE invoice_credits ALTER COLUMN applied_coupon_id DROP NOT NULL;
ALTER TABLE invoice_credits ADD COLUMN credit_note_id uuid REFERENCES credit_notes (id);
