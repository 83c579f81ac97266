-- The accounts' status as the user service announces it (UserStatusChanged): a blocked user
-- starts no reservation. One row per user ever blocked; the newest change wins.
CREATE TABLE IF NOT EXISTS reservation.user_status (
    user_id    uuid PRIMARY KEY,
    blocked    boolean NOT NULL,
    changed_at timestamptz NOT NULL
);
