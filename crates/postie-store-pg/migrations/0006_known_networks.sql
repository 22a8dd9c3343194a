-- Version 5: the networks each user logged in from, so that a correct password from a known
-- (user, network) pair skips the address's brute-force delay on every front end. A network is
-- an IPv4 address or an IPv6 prefix, as text. Times are the database's own clock (now()).

CREATE TABLE known_networks (
    user_name   TEXT NOT NULL,
    network     TEXT NOT NULL,
    -- The pair's last successful login; rows older than the remembering period are deleted
    -- by the sweep.
    last_login  TIMESTAMPTZ NOT NULL,
    -- When a success of this pair last halved the network's failure count: at most once per
    -- failure-forgetting window, so one valid account cannot keep an address's count down.
    credited_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_name, network)
);
CREATE INDEX known_networks_last_login ON known_networks (last_login);
