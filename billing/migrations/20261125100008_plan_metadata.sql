-- A plan's free key-value metadata (Lago's item metadata): keys to strings or null.
ALTER TABLE plans ADD COLUMN metadata jsonb;
