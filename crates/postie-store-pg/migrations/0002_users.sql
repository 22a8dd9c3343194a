-- Version 2: the users, for [auth] users = "postgres". One row holds what a passwd-file line
-- holds that postie uses: the name, the stored password exactly as the passwd-file writes it
-- (Dovecot's "{SCHEME}hash"), and Dovecot's extra fields (e.g. userdb_quota_rule=*:storage=1G),
-- space-separated as on the line. Plain SQL kept portable to CockroachDB and YugabyteDB.
CREATE TABLE users (
    name       TEXT PRIMARY KEY CHECK (octet_length(name) BETWEEN 1 AND 255),
    password   TEXT NOT NULL CHECK (password <> ''),
    extra      TEXT NOT NULL DEFAULT '',
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
