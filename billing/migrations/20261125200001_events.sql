-- The embedded event store. The primary key is the event identity (organization, transaction, subscription):
-- inserts use ON CONFLICT DO NOTHING, so the first event with an identity wins and retries change nothing. Its
-- column order also serves GET /events/{transaction_id}. The second index serves the aggregation scans.
-- No foreign key to organizations: it would cost a lookup per row on the hottest write path, and ingest only ever
-- writes rows of the organization it authenticated.
CREATE TABLE events (
    organization_id            uuid        NOT NULL,
    transaction_id             text        NOT NULL,
    external_subscription_id   text        NOT NULL,
    code                       text        NOT NULL,
    "timestamp"                timestamptz NOT NULL,
    properties                 jsonb       NOT NULL,
    precise_total_amount_cents numeric,
    ingested_at                timestamptz NOT NULL,
    PRIMARY KEY (organization_id, transaction_id, external_subscription_id)
);
CREATE INDEX events_scan ON events (organization_id, external_subscription_id, code, "timestamp");

-- Events kept but invalid for billing, for the hourly events.errors report: one row per event and kind.
CREATE TABLE event_errors (
    organization_id          uuid        NOT NULL,
    external_subscription_id text        NOT NULL,
    transaction_id           text        NOT NULL,
    kind                     text        NOT NULL,
    code                     text        NOT NULL,
    event_timestamp          timestamptz NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, external_subscription_id, transaction_id, kind)
);
CREATE INDEX event_errors_report ON event_errors (organization_id, created_at);
