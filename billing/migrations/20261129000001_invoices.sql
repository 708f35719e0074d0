-- Invoices and their fees. An invoice is written in one transaction with its fees, taxes and coupon credits, so a
-- crash leaves either the whole invoice or nothing. Amounts are integer cents as in Lago's API; the precise
-- (unrounded) amounts are kept beside them as numeric.
CREATE TABLE invoices (
    id                                     uuid PRIMARY KEY,
    organization_id                        uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id                            uuid NOT NULL REFERENCES customers (id),
    -- Set when the invoice is finalized (Lago numbers drafts "<prefix>-DRAFT").
    sequential_id                          bigint,
    organization_sequential_id             bigint,
    number                                 text NOT NULL,
    invoice_type                           text NOT NULL,
    status                                 text NOT NULL,
    payment_status                         text NOT NULL DEFAULT 'pending',
    currency                               text NOT NULL,
    issuing_date                           date NOT NULL,
    payment_due_date                       date NOT NULL,
    net_payment_term                       integer NOT NULL,
    fees_amount_cents                      bigint NOT NULL,
    coupons_amount_cents                   bigint NOT NULL,
    credit_notes_amount_cents              bigint NOT NULL DEFAULT 0,
    sub_total_excluding_taxes_amount_cents bigint NOT NULL,
    taxes_amount_cents                     bigint NOT NULL,
    sub_total_including_taxes_amount_cents bigint NOT NULL,
    prepaid_credit_amount_cents            bigint NOT NULL DEFAULT 0,
    total_amount_cents                     bigint NOT NULL,
    voided_at                              timestamptz,
    finalized_at                           timestamptz,
    created_at                             timestamptz NOT NULL DEFAULT now(),
    updated_at                             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_list ON invoices (organization_id, created_at DESC);
CREATE INDEX invoices_customer ON invoices (customer_id);
CREATE UNIQUE INDEX invoices_customer_sequence ON invoices (customer_id, sequential_id);
CREATE UNIQUE INDEX invoices_organization_sequence ON invoices (organization_id, organization_sequential_id);

-- Which subscription periods an invoice bills. The unique indexes are the billing clock's idempotency keys: a
-- charges period of a subscription is billed once, however often the clock fires or a termination races it.
-- The invoice reference is checked at commit: a billing run first claims the periods it bills, then writes the
-- invoices of the claims it won, in the same transaction.
CREATE TABLE invoice_subscriptions (
    invoice_id            uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    organization_id       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    subscription_id       uuid NOT NULL REFERENCES subscriptions (id),
    invoicing_reason      text NOT NULL,
    timestamp             timestamptz NOT NULL,
    from_datetime         timestamptz,
    to_datetime           timestamptz,
    charges_from_datetime timestamptz NOT NULL,
    charges_to_datetime   timestamptz NOT NULL,
    -- The event an invoice of charges paid in advance bills.
    event_transaction_id  text,
    PRIMARY KEY (invoice_id, subscription_id)
);
CREATE UNIQUE INDEX invoice_subscriptions_period ON invoice_subscriptions (subscription_id, charges_from_datetime)
    WHERE invoicing_reason IN ('subscription_periodic', 'subscription_terminating');
-- Charges paid in advance bill each event once.
CREATE UNIQUE INDEX invoice_subscriptions_event ON invoice_subscriptions (subscription_id, event_transaction_id)
    WHERE invoicing_reason = 'in_advance_charge';
-- A plan paid in advance bills its first period when the subscription starts: once.
CREATE UNIQUE INDEX invoice_subscriptions_starting ON invoice_subscriptions (subscription_id)
    WHERE invoicing_reason = 'subscription_starting';

CREATE TABLE fees (
    id                                    uuid PRIMARY KEY,
    organization_id                       uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    invoice_id                            uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    position                              integer NOT NULL,
    subscription_id                       uuid REFERENCES subscriptions (id),
    charge_id                             uuid REFERENCES charges (id),
    charge_filter_id                      uuid REFERENCES charge_filters (id),
    fee_type                              text NOT NULL,
    item_code                             text NOT NULL,
    item_name                             text NOT NULL,
    item_invoice_display_name             text,
    item_filter_invoice_display_name      text,
    item_description                      text,
    item_id                               uuid NOT NULL,
    item_type                             text NOT NULL,
    filters                               jsonb,
    grouped_by                            jsonb NOT NULL DEFAULT '{}',
    amount_cents                          bigint NOT NULL,
    precise_amount_cents                  numeric NOT NULL,
    amount_currency                       text NOT NULL,
    taxes_amount_cents                    bigint NOT NULL,
    taxes_precise_amount_cents            numeric NOT NULL,
    taxes_rate                            numeric NOT NULL,
    precise_coupons_amount_cents          numeric NOT NULL DEFAULT 0,
    units                                 numeric NOT NULL,
    total_aggregated_units                numeric NOT NULL,
    events_count                          bigint,
    unit_amount_cents                     bigint NOT NULL,
    precise_unit_amount                   numeric NOT NULL,
    pay_in_advance                        boolean NOT NULL DEFAULT false,
    invoiceable                           boolean NOT NULL DEFAULT true,
    from_datetime                         timestamptz,
    to_datetime                           timestamptz,
    payment_status                        text NOT NULL DEFAULT 'pending',
    created_at                            timestamptz NOT NULL DEFAULT now(),
    updated_at                            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fees_invoice ON fees (invoice_id, position);

-- Each tax of a fee and of an invoice, as applied (code, name and rate copied: a later change of the tax does not
-- rewrite history).
CREATE TABLE fee_taxes (
    id              uuid NOT NULL UNIQUE,
    fee_id          uuid NOT NULL REFERENCES fees (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    tax_id          uuid REFERENCES taxes (id),
    tax_code        text NOT NULL,
    tax_name        text NOT NULL,
    tax_rate        numeric NOT NULL,
    amount_cents    bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fee_id, tax_code)
);

CREATE TABLE invoice_taxes (
    id                uuid PRIMARY KEY,
    invoice_id        uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    tax_id            uuid REFERENCES taxes (id),
    tax_code          text NOT NULL,
    tax_name          text NOT NULL,
    tax_description   text,
    tax_rate          numeric NOT NULL,
    amount_cents      bigint NOT NULL,
    fees_amount_cents bigint NOT NULL,
    position          integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_taxes_invoice ON invoice_taxes (invoice_id, position);

-- What each applied coupon took from an invoice (Lago's credits).
CREATE TABLE invoice_credits (
    id                uuid PRIMARY KEY,
    invoice_id        uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    applied_coupon_id uuid NOT NULL REFERENCES applied_coupons (id),
    amount_cents      bigint NOT NULL,
    amount_currency   text NOT NULL,
    position          integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_credits_invoice ON invoice_credits (invoice_id, position);

