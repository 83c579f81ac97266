-- A reservation's timeline lives in its row, as a JSON array of {type, at} in order: every change
-- of the saga appends to it in the UPDATE that makes the change, and a reader gets it with the row.
-- A table of its own cost each change an insert, two index entries and a sequence step, and each
-- answer that showed the timeline an index scan and an aggregate.
ALTER TABLE reservation.reservations ADD COLUMN IF NOT EXISTS timeline jsonb NOT NULL DEFAULT '[]';
DO $$
BEGIN
    IF to_regclass('reservation.timeline') IS NOT NULL THEN
        UPDATE reservation.reservations r SET timeline = t.entries
        FROM (SELECT reservation_id,
                     jsonb_agg(jsonb_build_object('type', type, 'at', at) ORDER BY seq) AS entries
              FROM reservation.timeline GROUP BY reservation_id) t
        WHERE t.reservation_id = r.id;
        DROP TABLE reservation.timeline;
    END IF;
END $$;
