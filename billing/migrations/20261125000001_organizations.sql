-- Organizations are the tenants: every other row belongs to exactly one, and every query is scoped by it.
CREATE TABLE organizations (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    timezone         text NOT NULL DEFAULT 'UTC',
    default_currency text NOT NULL DEFAULT 'USD',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Bearer keys; an organization may hold several (Lago's api_keys).
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    value           text NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_organization_id ON api_keys (organization_id);
