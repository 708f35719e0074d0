-- Coupons, soft-deleted as in Lago; `status` becomes terminated when deleted or expired.
CREATE TABLE coupons (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               text NOT NULL,
    code               text NOT NULL,
    description        text,
    coupon_type        text NOT NULL,
    amount_cents       bigint,
    amount_currency    text,
    percentage_rate    numeric,
    frequency          text NOT NULL,
    frequency_duration integer,
    reusable           boolean NOT NULL DEFAULT true,
    expiration         text NOT NULL,
    expiration_at      timestamptz,
    status             text NOT NULL DEFAULT 'active',
    terminated_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX coupons_code_live ON coupons (organization_id, code) WHERE deleted_at IS NULL;

-- The plans or billable metrics a limited coupon applies to.
CREATE TABLE coupon_targets (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    coupon_id          uuid NOT NULL REFERENCES coupons (id) ON DELETE CASCADE,
    plan_id            uuid REFERENCES plans (id),
    billable_metric_id uuid REFERENCES billable_metrics (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((plan_id IS NULL) <> (billable_metric_id IS NULL))
);
CREATE INDEX coupon_targets_coupon ON coupon_targets (coupon_id);

CREATE TABLE applied_coupons (
    id                           uuid PRIMARY KEY,
    organization_id              uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    coupon_id                    uuid NOT NULL REFERENCES coupons (id),
    customer_id                  uuid NOT NULL REFERENCES customers (id),
    status                       text NOT NULL DEFAULT 'active',
    amount_cents                 bigint,
    amount_currency              text,
    percentage_rate              numeric,
    frequency                    text NOT NULL,
    frequency_duration           integer,
    frequency_duration_remaining integer,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    terminated_at                timestamptz
);
CREATE INDEX applied_coupons_list ON applied_coupons (organization_id, created_at DESC);
CREATE INDEX applied_coupons_customer ON applied_coupons (customer_id);
