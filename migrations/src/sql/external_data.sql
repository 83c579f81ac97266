-- Schema `external_data`: the delivery log of completed reservations sent to the external platform.
CREATE TABLE IF NOT EXISTS external_data.deliveries (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    reservation_id  uuid NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     int,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_due ON external_data.deliveries (next_attempt_at)
    WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS deliveries_status ON external_data.deliveries (status, id);
