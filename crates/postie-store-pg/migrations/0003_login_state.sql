-- Version 3: the login state every front end shares, so that spreading attempts over several
-- front ends gains an attacker nothing. Times are the database's own clock (now()), one clock
-- for all front ends. Plain SQL kept portable to CockroachDB and YugabyteDB.

-- Recent failed logins of one client address ('address') or of one user name from any
-- address ('user'); rows quiet for long enough are forgotten, and deleted by the sweep.
CREATE TABLE login_failures (
    kind     TEXT NOT NULL CHECK (kind IN ('address', 'user')),
    subject  TEXT NOT NULL,
    failures INTEGER NOT NULL CHECK (failures > 0),
    last_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX login_failures_last_at ON login_failures (last_at);

-- Each user's last successful login, for LOGIN-DELAY.
CREATE TABLE last_logins (
    user_name TEXT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL
);
