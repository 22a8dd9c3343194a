-- postie's PostgreSQL store, version 4: fences for deliveries whose COMMIT lost its answer.
--
-- A recipient's transaction inserts its delivery id here along with its message row. When the
-- connection fails during its COMMIT, the front end inserts the same id, marked fenced, on a
-- fresh connection: if the delivery's transaction is still running somewhere, that insert
-- waits for it (both want the same key) and then finds the delivery's row (committed: 250);
-- if it finds no row, its own fenced row stops the delivery from ever committing later (451,
-- and the sender's retry cannot make a duplicate). A plain lookup could run before a COMMIT
-- still in flight on the old server process and guess wrong.
CREATE TABLE delivery_fences (
    delivery_id BYTEA PRIMARY KEY CHECK (octet_length(delivery_id) = 16),
    -- true: put there by a lookup that found no delivery.
    fenced      BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The sweep forgets fences a day old: no transaction lives that long.
CREATE INDEX delivery_fences_created ON delivery_fences (created_at);
