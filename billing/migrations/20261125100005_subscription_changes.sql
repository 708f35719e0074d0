-- A customer-specific plan's charges point at the charges they override.
ALTER TABLE charges ADD COLUMN parent_id uuid REFERENCES charges (id);

-- A downgrade is a pending subscription that replaces its previous one at the end of the current period.
ALTER TABLE subscriptions ADD COLUMN activates_at timestamptz;
CREATE INDEX subscriptions_due ON subscriptions (organization_id) WHERE status IN ('pending', 'active');

-- One live subscription per external_id, not counting a downgrade waiting to replace the active one.
DROP INDEX subscriptions_external_id_live;
CREATE UNIQUE INDEX subscriptions_external_id_live ON subscriptions (organization_id, external_id)
    WHERE status = 'active' OR (status = 'pending' AND activates_at IS NULL);
