-- A cancelled schedule (ScheduleCancelled): the catalog keeps when, the inventory holds nothing of
-- it any more, and the reservation service ends every reservation of it (the sweeper looks at
-- the schedules cancelled in the last day, by the partial index). Safe to run again.
ALTER TABLE concert.schedules ADD COLUMN IF NOT EXISTS cancelled_at timestamptz;
ALTER TABLE seat.schedules ADD COLUMN IF NOT EXISTS cancelled_at timestamptz;
ALTER TABLE reservation.schedules ADD COLUMN IF NOT EXISTS cancelled_at timestamptz;
CREATE INDEX IF NOT EXISTS schedules_cancelled ON reservation.schedules (cancelled_at)
    WHERE cancelled_at IS NOT NULL;
-- The sweeper's look at users blocked in the last day (the block's missed reservations).
CREATE INDEX IF NOT EXISTS user_status_blocked ON reservation.user_status (changed_at) WHERE blocked;
