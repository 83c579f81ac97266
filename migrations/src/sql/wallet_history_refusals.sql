-- Refusals in the history (ChargeFailed, PaymentFailed): they move no balance, so an entry's
-- balance may be absent, and they say why. Safe to run again.
ALTER TABLE wallet_history.entries ALTER COLUMN balance_after DROP NOT NULL;
ALTER TABLE wallet_history.entries ADD COLUMN IF NOT EXISTS reason text;
ALTER TABLE wallet_history.entries DROP CONSTRAINT IF EXISTS entries_kind_check;
ALTER TABLE wallet_history.entries ADD CONSTRAINT entries_kind_check
    CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND', 'CHARGE_FAILED', 'PAYMENT_FAILED'));
