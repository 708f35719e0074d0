-- Events sent again with an identity already stored: each sending gets Lago's `event.error` webhook
-- (`transaction_id: value_already_exist`). Ingest records them (the sink before committing its offsets, so a replay
-- finds the row already there); the webhook worker sends them and marks them sent, and drops sent rows after a week.
CREATE TABLE event_duplicates (
    organization_id            uuid        NOT NULL,
    external_subscription_id   text        NOT NULL,
    transaction_id             text        NOT NULL,
    -- This sending's receipt time: with the identity, it names one sending.
    ingested_at                timestamptz NOT NULL,
    code                       text        NOT NULL,
    "timestamp"                timestamptz NOT NULL,
    properties                 jsonb       NOT NULL,
    precise_total_amount_cents numeric,
    sent_at                    timestamptz,
    PRIMARY KEY (organization_id, external_subscription_id, transaction_id, ingested_at)
);
CREATE INDEX event_duplicates_unsent ON event_duplicates (ingested_at) WHERE sent_at IS NULL;
