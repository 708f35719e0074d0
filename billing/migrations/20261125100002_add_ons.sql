-- Add-ons, soft-deleted as in Lago (the code can be reused).
CREATE TABLE add_ons (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                 text NOT NULL,
    invoice_display_name text,
    code                 text NOT NULL,
    description          text,
    amount_cents         bigint NOT NULL,
    amount_currency      text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz
);
CREATE UNIQUE INDEX add_ons_code_live ON add_ons (organization_id, code) WHERE deleted_at IS NULL;
