-- Webhooks (issue #9): the organization's HMAC secret, its endpoints, the outbox of webhooks with every delivery
-- attempt, the hourly events.errors reports already issued, and the installation's RS256 signing key.

-- Lago's secret is a random UUID string, unique per organization; existing organizations get one here.
ALTER TABLE organizations ADD COLUMN hmac_key text;
UPDATE organizations SET hmac_key = gen_random_uuid()::text WHERE hmac_key IS NULL;
ALTER TABLE organizations ALTER COLUMN hmac_key SET DEFAULT gen_random_uuid()::text,
    ALTER COLUMN hmac_key SET NOT NULL;
CREATE UNIQUE INDEX organizations_hmac_key ON organizations (hmac_key);

CREATE TABLE webhook_endpoints (
    id              uuid        PRIMARY KEY,
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    webhook_url     text        NOT NULL,
    signature_algo  text        NOT NULL DEFAULT 'jwt' CHECK (signature_algo IN ('jwt', 'hmac')),
    name            text,
    -- NULL: every webhook type.
    event_types     text[],
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, webhook_url)
);

-- The outbox: one row per (webhook, endpoint), written in the transaction of the change it reports. Its id is the
-- X-Lago-Unique-Key. `body` is the exact JSON text sent (and signed); it is rendered on the first attempt from
-- (object_type, object_id), or written at once for reports that have no object of their own (events.errors).
CREATE TABLE webhooks (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid        NOT NULL REFERENCES organizations (id),
    webhook_endpoint_id uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    webhook_type        text        NOT NULL,
    object_type         text        NOT NULL,
    object_id           uuid,
    body                text,
    endpoint            text        NOT NULL,
    status              text        NOT NULL DEFAULT 'pending'
                                    CHECK (status IN ('pending', 'retrying', 'succeeded', 'failed')),
    retries             integer     NOT NULL DEFAULT 0,
    http_status         integer,
    response            text,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    last_retried_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE status IN ('pending', 'retrying');
CREATE INDEX webhooks_of_endpoint ON webhooks (webhook_endpoint_id, created_at);
-- Webhooks are kept 90 days after their last change, as in Lago.
CREATE INDEX webhooks_updated_at ON webhooks (updated_at);

CREATE TABLE webhook_attempts (
    webhook_id  uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    http_status integer,
    -- The start of the response body, or the transport error (refused, timeout).
    response    text,
    error       text,
    started_at  timestamptz NOT NULL,
    duration_ms integer     NOT NULL,
    PRIMARY KEY (webhook_id, attempt)
);

-- The hourly events.errors report looks for the organizations with invalid events in an hour.
CREATE INDEX event_errors_created_at ON event_errors (created_at);

-- One events.errors report per organization and hour, whichever worker issues it.
CREATE TABLE events_errors_reports (
    organization_id uuid        NOT NULL REFERENCES organizations (id),
    hour            timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, hour)
);

-- The RS256 key of JWT-signed webhooks when LAGO_RSA_PRIVATE_KEY is not set: generated once, shared by every
-- process of the installation (the API publishes its public half, the workers sign with it).
CREATE TABLE webhook_signing_keys (
    id              integer     PRIMARY KEY CHECK (id = 1),
    private_key_pem text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- The subscription.termination_alert webhooks sent, one per subscription and day, whichever worker sends it.
CREATE TABLE subscription_termination_alerts (
    subscription_id uuid        NOT NULL REFERENCES subscriptions (id),
    day             date        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, day)
);
