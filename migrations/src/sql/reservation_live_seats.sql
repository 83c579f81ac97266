-- The live reservations of a schedule (their seats are held, about to be, or sold): what
-- POST /reservations looks at to turn away a request for a seat someone else is already
-- reserving, without starting a saga the seat service would only reject.
CREATE INDEX IF NOT EXISTS reservations_live_by_schedule ON reservation.reservations (schedule_id)
    WHERE status IN ('PENDING', 'HELD', 'PAYING', 'CONFIRMED');
