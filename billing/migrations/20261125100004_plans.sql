-- Plans and their charges. Soft deletion everywhere: subscriptions and (later) invoices keep pointing at the rows
-- they were billed with, so a plan's history survives its updates. A plan with a parent is a customer-specific copy
-- made by a subscription's plan_overrides; its code is its parent's and it is not listed.
CREATE TABLE plans (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    parent_id            uuid REFERENCES plans (id),
    name                 text NOT NULL,
    invoice_display_name text,
    code                 text NOT NULL,
    interval             text NOT NULL,
    description          text,
    amount_cents         bigint NOT NULL,
    amount_currency      text NOT NULL,
    trial_period         numeric,
    pay_in_advance       boolean NOT NULL DEFAULT false,
    bill_charges_monthly boolean,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE UNIQUE INDEX plans_code_live ON plans (organization_id, code) WHERE deleted_at IS NULL AND parent_id IS NULL;
CREATE INDEX plans_list ON plans (organization_id, created_at DESC) WHERE deleted_at IS NULL AND parent_id IS NULL;

CREATE TABLE commitments (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id              uuid NOT NULL UNIQUE REFERENCES plans (id) ON DELETE CASCADE,
    amount_cents         bigint NOT NULL,
    invoice_display_name text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE charges (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    plan_id              uuid NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    billable_metric_id   uuid NOT NULL REFERENCES billable_metrics (id),
    code                 text NOT NULL,
    invoice_display_name text,
    charge_model         text NOT NULL,
    pay_in_advance       boolean NOT NULL DEFAULT false,
    invoiceable          boolean NOT NULL DEFAULT true,
    prorated             boolean NOT NULL DEFAULT false,
    min_amount_cents     bigint NOT NULL DEFAULT 0,
    regroup_paid_fees    text,
    properties           jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX charges_plan ON charges (plan_id) WHERE deleted_at IS NULL;
CREATE INDEX charges_metric ON charges (billable_metric_id) WHERE deleted_at IS NULL;

CREATE TABLE charge_filters (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    charge_id            uuid NOT NULL REFERENCES charges (id) ON DELETE CASCADE,
    invoice_display_name text,
    properties           jsonb NOT NULL DEFAULT '{}',
    "values"             jsonb NOT NULL,
    position             integer NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE INDEX charge_filters_charge ON charge_filters (charge_id) WHERE deleted_at IS NULL;

-- Subscriptions of customers to plans. At most one pending or active subscription per external_id.
CREATE TABLE subscriptions (
    id                       uuid PRIMARY KEY,
    organization_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    customer_id              uuid NOT NULL REFERENCES customers (id),
    plan_id                  uuid NOT NULL REFERENCES plans (id),
    external_id              text NOT NULL,
    name                     text,
    status                   text NOT NULL,
    billing_time             text NOT NULL,
    subscription_at          timestamptz NOT NULL,
    started_at               timestamptz,
    ending_at                timestamptz,
    terminated_at            timestamptz,
    canceled_at              timestamptz,
    previous_subscription_id uuid REFERENCES subscriptions (id),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX subscriptions_external_id_live ON subscriptions (organization_id, external_id)
    WHERE status IN ('pending', 'active');
CREATE INDEX subscriptions_list ON subscriptions (organization_id, created_at DESC);
CREATE INDEX subscriptions_plan ON subscriptions (plan_id);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id);
