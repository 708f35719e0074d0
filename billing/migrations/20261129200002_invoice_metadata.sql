-- An invoice's metadata: key-value pairs set through `PUT /invoices/{id}` (at most five, as Lago).
CREATE TABLE invoice_metadata (
    id              uuid PRIMARY KEY,
    invoice_id      uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key             text NOT NULL,
    value           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_metadata_invoice ON invoice_metadata (invoice_id, created_at);
