-- When a schedule's sale opens (absent: on sale from the start). The catalog keeps what the
-- organizer set; the seat inventory keeps its copy, and holds nothing before. Safe to run again.
ALTER TABLE concert.schedules ADD COLUMN IF NOT EXISTS sales_open_at timestamptz;
ALTER TABLE seat.schedules ADD COLUMN IF NOT EXISTS sales_open_at timestamptz;
