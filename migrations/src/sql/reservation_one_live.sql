-- At most one live reservation (PENDING, HELD, PAYING) per user and schedule: the per-user
-- limit of a flash sale, kept by Postgres so that racing requests (in one statement, in
-- several, on several replicas) cannot get past it together. A request's insert that meets it
-- does nothing (ON CONFLICT DO NOTHING) and is answered LIMIT_REACHED.
--
-- A database that already holds a user's second live reservation of a schedule (written before
-- the limit existed) keeps them: the index then only covers reservations created from now on,
-- and those left over end as every hold does.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM reservation.reservations WHERE status IN ('PENDING', 'HELD', 'PAYING')
        GROUP BY user_id, schedule_id HAVING count(*) > 1
    ) THEN
        EXECUTE format(
            'CREATE UNIQUE INDEX IF NOT EXISTS reservations_one_live ON reservation.reservations (user_id, schedule_id) '
            'WHERE status IN (''PENDING'', ''HELD'', ''PAYING'') AND created_at > %L',
            now()
        );
        RAISE NOTICE 'reservations_one_live covers reservations created after %: older ones break the limit', now();
    ELSE
        CREATE UNIQUE INDEX IF NOT EXISTS reservations_one_live ON reservation.reservations (user_id, schedule_id)
            WHERE status IN ('PENDING', 'HELD', 'PAYING');
    END IF;
END
$$;
