-- tokenwarden PostgreSQL schema, version 3: the revocation feed (docs/revocation-feed.md; the
-- tables of migrations/sqlite/0003_revocation_feed.sql).
--
-- The conventions of 0001_initial.sql hold: token digests as 32-byte BYTEA (length CHECKed),
-- BIGINT Unix seconds taken from the caller, "C" collation on identifiers.

-- The feed's counter, one row. `head` is the highest sequence number committed (0 before the
-- first event), `floor` the highest one purged (a cursor below it cannot be resumed).
--
-- Every transaction that revokes something ends with `UPDATE revocation_feed SET head = head + n
-- … RETURNING head` and inserts its n events numbered head-n+1..=head. The row lock that UPDATE
-- takes is held until commit, so event writers on every node are serialized on it: sequence
-- numbers are gapless (a rollback rolls the counter back too) and increase in commit order, so a
-- reader whose snapshot shows event n shows every event before it. Being each transaction's last
-- write, the lock is never held while waiting for another one (no deadlock with the grant and
-- token locks taken before it).
CREATE TABLE revocation_feed (
    id    INT    PRIMARY KEY CHECK (id = 1),
    head  BIGINT NOT NULL CHECK (head >= 0),
    floor BIGINT NOT NULL CHECK (floor >= 0 AND floor <= head)
);

INSERT INTO revocation_feed (id, head, floor) VALUES (1, 0, 0);

-- One revocation. No foreign keys: the event outlives what it names (a deleted client, a purged
-- grant or token) for as long as the feed keeps it.
CREATE TABLE revocation_events (
    seq          BIGINT NOT NULL PRIMARY KEY CHECK (seq > 0),
    at           BIGINT NOT NULL,
    kind         TEXT   NOT NULL CHECK (kind IN ('token', 'grant', 'client')),
    client_id    TEXT COLLATE "C" NOT NULL,
    -- `token` events: SHA-256 of the revoked access token (never the token itself).
    token_digest BYTEA  CHECK (token_digest IS NULL OR octet_length(token_digest) = 32),
    -- `grant` events: the grant; `token` events: the token's grant, when it has one.
    grant_id     TEXT COLLATE "C",
    -- `grant` events: the user who authorized the grant.
    subject      TEXT COLLATE "C"
);

-- Purge looks for the newest event old enough to go (`max(seq) … WHERE at <= cutoff`); with `seq`
-- in the index that is an index-only scan. Readers and the purge's deletions go by `seq`, the
-- primary key.
CREATE INDEX revocation_events_by_at ON revocation_events (at, seq);
