-- Schema `payment`: card payments through the external gateway, several attempts per
-- reservation (a declined card may be followed by another), and the webhook ids taken.
CREATE TABLE IF NOT EXISTS payment.payments (
    id              uuid PRIMARY KEY,          -- also the gateway's Idempotency-Key and orderId
    reservation_id  uuid NOT NULL,
    user_id         uuid NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    pay_by          timestamptz NOT NULL,
    status          text NOT NULL CHECK (status IN
                        ('NEW', 'READY', 'CAPTURED', 'DECLINED', 'FAILED', 'VOIDED', 'REFUNDING', 'REFUNDED')),
    gateway_id      text UNIQUE,
    checkout_url    text,
    refund_wanted   boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    failure_reason  text,
    -- When the gateway worker calls the gateway for it next; none once it waits for nothing.
    next_attempt_at timestamptz DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payments_reservation ON payment.payments (reservation_id);
CREATE INDEX IF NOT EXISTS payments_due ON payment.payments (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- Each webhook is taken once (a copy or a replay changes nothing).
CREATE TABLE IF NOT EXISTS payment.webhooks (
    id          text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
