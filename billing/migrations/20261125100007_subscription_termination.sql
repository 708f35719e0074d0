-- What terminating a subscription does about its unused paid-in-advance part and its final invoice (Lago's
-- on_termination_credit_note / on_termination_invoice).
ALTER TABLE subscriptions
    ADD COLUMN on_termination_credit_note text,
    ADD COLUMN on_termination_invoice     text NOT NULL DEFAULT 'generate';
