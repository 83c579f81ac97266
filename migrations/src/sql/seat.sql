-- Schema `seat`: Seat inventory: one row per seat, AVAILABLE -> HELD -> SOLD.
CREATE TABLE IF NOT EXISTS seat.schedules (
    schedule_id   uuid PRIMARY KEY,
    concert_id    uuid NOT NULL,
    seat_count    integer NOT NULL,
    first_sold_at timestamptz,
    sold_out_at   timestamptz
);
CREATE TABLE IF NOT EXISTS seat.seats (
    schedule_id    uuid NOT NULL REFERENCES seat.schedules (schedule_id),
    seat_no        integer NOT NULL,
    price          bigint NOT NULL CHECK (price > 0),
    status         text NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    reservation_id uuid,
    held_until     timestamptz,
    sold_at        timestamptz,
    PRIMARY KEY (schedule_id, seat_no),
    CHECK ((status = 'AVAILABLE') = (reservation_id IS NULL))
);
