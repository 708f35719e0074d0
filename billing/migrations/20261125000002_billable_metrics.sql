-- Billable metrics are soft-deleted as in Lago: a deleted metric keeps its history, and its code can be used again.
CREATE TABLE billable_metrics (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name               text NOT NULL,
    code               text NOT NULL,
    description        text,
    aggregation_type   text NOT NULL,
    field_name         text,
    weighted_interval  text,
    recurring          boolean NOT NULL DEFAULT false,
    rounding_function  text,
    rounding_precision integer,
    expression         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE UNIQUE INDEX billable_metrics_code_live ON billable_metrics (organization_id, code) WHERE deleted_at IS NULL;
CREATE INDEX billable_metrics_list ON billable_metrics (organization_id, created_at DESC) WHERE deleted_at IS NULL;

-- Filter keys with their allowed values; charges will refer to them by id.
CREATE TABLE billable_metric_filters (
    id                 uuid PRIMARY KEY,
    billable_metric_id uuid NOT NULL REFERENCES billable_metrics (id) ON DELETE CASCADE,
    key                text NOT NULL,
    "values"           text[] NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz
);
CREATE INDEX billable_metric_filters_metric ON billable_metric_filters (billable_metric_id) WHERE deleted_at IS NULL;
