-- Readiness: each replica updates this one row now and then, to learn that
-- Postgres still accepts writes (not read-only, not a standby, disk not full).
CREATE TABLE write_probe (
    id         smallint    PRIMARY KEY CHECK (id = 1),
    written_at timestamptz NOT NULL
);
INSERT INTO write_probe (id, written_at) VALUES (1, now());
