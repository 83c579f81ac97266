-- The open reservations by the moment their clock runs out: a PENDING request's creation (its
-- `held_until` is not set yet), a HELD or PAYING reservation's hold. What the deadline sweeper
-- reads (one range per status), so that a sweep reads what is due rather than every open
-- reservation: `reservations_open` (status, created_at) did not hold a HELD row's deadline, and
-- each sweep read every HELD reservation to find the few past `held_until`. It replaces that
-- index, so a change of status writes no more index entries than before.
CREATE INDEX IF NOT EXISTS reservations_due ON reservation.reservations (status, coalesce(held_until, created_at))
    WHERE status IN ('PENDING', 'HELD', 'PAYING');
DROP INDEX IF EXISTS reservation.reservations_open;
