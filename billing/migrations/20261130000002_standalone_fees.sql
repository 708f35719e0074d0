-- Fees without an invoice: a charge paid in advance that is not invoiceable bills each event with a fee of its own,
-- as Lago does; the fee carries its taxes and its own payment status. Every fee of a charge paid in advance names
-- the event it bills, and a standalone one is unique on (subscription, charge, event), so a repeated pass bills an
-- event once.
ALTER TABLE fees ALTER COLUMN invoice_id DROP NOT NULL;
ALTER TABLE fees ADD COLUMN pay_in_advance_event_transaction_id text;
ALTER TABLE fees ADD COLUMN succeeded_at timestamptz;
ALTER TABLE fees ADD COLUMN failed_at timestamptz;
ALTER TABLE fees ADD COLUMN refunded_at timestamptz;
-- Deleted (`DELETE /fees/{id}`) standalone fees stay, as Lago discards them.
ALTER TABLE fees ADD COLUMN deleted_at timestamptz;
CREATE UNIQUE INDEX fees_in_advance_event ON fees (subscription_id, charge_id, pay_in_advance_event_transaction_id)
    WHERE invoice_id IS NULL AND pay_in_advance_event_transaction_id IS NOT NULL;
CREATE INDEX fees_list ON fees (organization_id, created_at, id);
