-- Schema `users` (the `user` service; `user` is a reserved word in SQL): accounts.
CREATE TABLE IF NOT EXISTS users.accounts (
    id            uuid PRIMARY KEY,
    -- Trimmed and lower-cased by the service: one account per address.
    email         text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) <= 254),
    -- An Argon2id PHC string (salt and parameters included); never the password.
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    status        text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'BLOCKED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
