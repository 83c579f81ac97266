-- Schema `wallet_history`: the read side's append-only wallet history.
CREATE TABLE IF NOT EXISTS wallet_history.entries (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND')),
    amount         bigint NOT NULL CHECK (amount >= 0),
    balance_after  bigint NOT NULL,
    reservation_id uuid,
    at             timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_user ON wallet_history.entries (user_id, id DESC);
