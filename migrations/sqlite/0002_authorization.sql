-- tokenwarden SQLite schema, version 2: authorization codes, browser sessions, consents.
--
-- The conventions of 0001_initial.sql hold: secrets stored only as their 32-byte SHA-256 digest
-- in WITHOUT ROWID tables keyed by it, INTEGER Unix seconds, scopes as their normalized string.

-- RFC 6749 §4.1.2: a code is used at most once, and a second use revokes what the first issued.
-- A code row therefore outlives its expiry by the purge retention (`purge` deletes it once
-- `expires_at <= now - revoked_retention`), so a late second use is still recognised as reuse.
CREATE TABLE authorization_codes (
    digest             BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    client_id          TEXT    NOT NULL,
    username           TEXT    NOT NULL,
    -- Compared exactly at the token endpoint (RFC 6749 §4.1.3).
    redirect_uri       TEXT    NOT NULL,
    -- Whether the authorization request named it; if so the token request must too.
    redirect_uri_given INTEGER NOT NULL CHECK (redirect_uri_given IN (0, 1)),
    scope              TEXT    NOT NULL,
    -- RFC 7636 S256 challenge; NULL when the request carried none.
    code_challenge     TEXT,
    issued_at          INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    -- Set by the redemption compare-and-set, together with the grant it created.
    used_at            INTEGER,
    -- No REFERENCES grants: purge deletes a grant once its tokens are gone, which can be before
    -- the code's retention ends; the id then still names what a reuse would have revoked.
    grant_id           TEXT
) WITHOUT ROWID;

-- Purge scans codes past expiry plus retention.
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

-- A signed-in browser session, keyed by the digest of the cookie value.
CREATE TABLE sessions (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Purge deletes sessions from their expiry on.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- A remembered consent: the user approved `scope` for the client. No foreign keys, as for
-- grants: `delete_client` deletes the client's consents itself, in its transaction.
CREATE TABLE consents (
    username   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (username, client_id)
) WITHOUT ROWID;

-- `delete_client` deletes by client; the primary key serves lookups by user.
CREATE INDEX consents_by_client ON consents (client_id);
