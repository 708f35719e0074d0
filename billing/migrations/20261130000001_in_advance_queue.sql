-- Subscriptions with stored events for charges paid in advance that the worker has not billed yet. Ingest adds a
-- row per stored batch and subscription before it acknowledges the batch (embedded) or commits its offsets (sink),
-- so an acknowledged event is always queued; the worker takes rows with SKIP LOCKED, bills the subscription's
-- unbilled events and deletes the rows it took, in one transaction. Rows are never updated, so ingest never waits
-- on a row the worker holds. No foreign key: ingest writes here on its hot path.
CREATE TABLE in_advance_queue (
    id              bigserial PRIMARY KEY,
    subscription_id uuid NOT NULL,
    -- The earliest timestamp among the queued events: billing starts from its period, so an event that comes in
    -- just before a period ends, or late, is billed in the period it belongs to.
    first_event_at  timestamptz NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT now()
);
