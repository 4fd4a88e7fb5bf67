-- tokenwarden SQLite schema, version 3: the revocation feed (docs/revocation-feed.md).
--
-- The conventions of 0001_initial.sql hold: INTEGER Unix seconds, token digests as 32-byte BLOBs.

-- The feed's bounds, in one row. `head` is the last sequence number handed out; a revoking
-- transaction raises it by the number of events it appends (`UPDATE … RETURNING head`) and numbers
-- them `head - n + 1 ..= head`. SQLite has one writer at a time, so numbers are handed out in
-- commit order, and a rolled-back transaction (or savepoint) takes its numbers back with it: the
-- sequence has no gaps. `floor` is the last number purged (retention); a cursor below it cannot
-- be resumed.
CREATE TABLE revocation_feed (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    head  INTEGER NOT NULL CHECK (head >= 0),
    floor INTEGER NOT NULL CHECK (floor >= 0 AND floor <= head)
);

INSERT INTO revocation_feed (id, head, floor) VALUES (1, 0, 0);

-- One revocation. `seq` is the rowid (INTEGER PRIMARY KEY), so reading after a cursor is one range
-- of the table's own B-tree. No REFERENCES to clients or grants: a `client` event outlives the
-- client it announces, and purge deletes grants and tokens on its own schedule.
CREATE TABLE revocation_events (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('token', 'grant', 'client')),
    client_id    TEXT    NOT NULL,
    -- `token` events: SHA-256 of the revoked access token.
    token_digest BLOB    CHECK (token_digest IS NULL OR length(token_digest) = 32),
    -- `grant` events: the grant; `token` events: the token's grant, if any.
    grant_id     TEXT,
    -- `grant` events: the user who authorized the grant.
    subject      TEXT
);

-- Purge finds the newest event old enough to go (`max(seq) … WHERE at <= cutoff`); the rowid in
-- every index entry makes this index covering for that query.
CREATE INDEX revocation_events_by_at ON revocation_events (at);
