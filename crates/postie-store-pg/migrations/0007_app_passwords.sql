-- Version 7: app passwords (postie user app-password). One row per password: its label, the
-- SHA-256 digest of its letters ("sha256:<hex>", as the passwd-file world stores it), when it
-- was made, and when, from where and over what it last logged in. A user who requires them
-- has the account's own password refused over POP3. Removing a user removes its app passwords.
CREATE TABLE app_passwords (
    user_name      TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE ON UPDATE CASCADE,
    label          TEXT NOT NULL CHECK (octet_length(label) BETWEEN 1 AND 64),
    digest         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at   TIMESTAMPTZ,
    last_used_from TEXT,
    last_used_over TEXT,
    PRIMARY KEY (user_name, label)
);
ALTER TABLE users ADD COLUMN app_passwords_required BOOLEAN NOT NULL DEFAULT false;
