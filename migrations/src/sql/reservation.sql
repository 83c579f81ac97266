-- Schema `reservation`: Reservations (the saga state), their timelines, and a projection of schedules.
CREATE TABLE IF NOT EXISTS reservation.schedules (
    schedule_id uuid PRIMARY KEY,
    concert_id  uuid NOT NULL,
    seat_nos    integer[] NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation.reservations (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    schedule_id    uuid NOT NULL,
    concert_id     uuid NOT NULL,
    seat_nos       integer[] NOT NULL,
    status         text NOT NULL
        CHECK (status IN ('PENDING', 'HELD', 'PAYING', 'CONFIRMED', 'FAILED', 'EXPIRED', 'CANCELLED')),
    amount         bigint,
    held_until     timestamptz,
    failure_reason text,
    queue_token    text NOT NULL DEFAULT '',
    paid           boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reservations_by_user ON reservation.reservations (user_id, id DESC);
CREATE INDEX IF NOT EXISTS reservations_open ON reservation.reservations (status, created_at)
    WHERE status IN ('PENDING', 'HELD', 'PAYING');
CREATE TABLE IF NOT EXISTS reservation.timeline (
    seq            bigserial PRIMARY KEY,
    reservation_id uuid NOT NULL,
    type           text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    detail         jsonb
);
CREATE INDEX IF NOT EXISTS timeline_by_reservation ON reservation.timeline (reservation_id, seq);
