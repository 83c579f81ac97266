-- Schema `wallet`: Prepaid wallets, their charges, and one payment per reservation.
CREATE TABLE IF NOT EXISTS wallet.wallets (
    user_id    uuid PRIMARY KEY,
    balance    bigint NOT NULL CHECK (balance >= 0 AND balance <= 1000000000000),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wallet.charges (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    balance_after bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wallet.payments (
    id             uuid PRIMARY KEY,
    reservation_id uuid NOT NULL UNIQUE,
    user_id        uuid NOT NULL,
    amount         bigint NOT NULL CHECK (amount >= 0),
    status         text NOT NULL CHECK (status IN ('COMPLETED', 'REFUNDED', 'VOIDED')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    refunded_at    timestamptz
);
