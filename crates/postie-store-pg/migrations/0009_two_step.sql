-- Version 9: two-step sign-in for the account page. One row per user who turned it on: the
-- TOTP secret (20 bytes), the last time step whose code signed in (a code logs in once), and
-- the SHA-256 digests of the recovery codes not used yet. Removing a user removes its row.
CREATE TABLE two_step (
    user_name  TEXT PRIMARY KEY REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    secret     BYTEA NOT NULL CHECK (octet_length(secret) = 20),
    used_step  BIGINT,
    recovery   BYTEA[] NOT NULL
);
