-- Taxes, soft-deleted as in Lago (the code can be reused once the tax is deleted).
CREATE TABLE taxes (
    id                      uuid PRIMARY KEY,
    organization_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                    text NOT NULL,
    code                    text NOT NULL,
    description             text,
    rate                    numeric NOT NULL,
    applied_to_organization boolean NOT NULL DEFAULT false,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz
);
CREATE UNIQUE INDEX taxes_code_live ON taxes (organization_id, code) WHERE deleted_at IS NULL;

-- Which taxes apply to an add-on, a customer, a plan or a charge (Lago's `*_applied_taxes` tables, as one).
CREATE TABLE applied_taxes (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_type      text NOT NULL,
    owner_id        uuid NOT NULL,
    tax_id          uuid NOT NULL REFERENCES taxes (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_type, owner_id, tax_id)
);
CREATE INDEX applied_taxes_tax ON applied_taxes (tax_id);
