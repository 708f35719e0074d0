-- A fee's own description (Lago's `fees.description`): a one-off invoice's fee may describe itself apart from its
-- add-on. Null for the fees of subscription invoices.
ALTER TABLE fees ADD COLUMN description text;
