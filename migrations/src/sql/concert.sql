-- Schema `concert`: Concerts and their schedules (the catalog).
CREATE TABLE IF NOT EXISTS concert.concerts (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    host       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS concert.schedules (
    id         uuid PRIMARY KEY,
    concert_id uuid NOT NULL REFERENCES concert.concerts (id),
    starts_at  timestamptz NOT NULL,
    seat_count integer NOT NULL CHECK (seat_count BETWEEN 1 AND 50),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schedules_by_concert ON concert.schedules (concert_id, id);
