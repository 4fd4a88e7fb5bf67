-- tokenwarden PostgreSQL schema, version 2: authorization codes, browser sessions, consents (the
-- tables of migrations/sqlite/0002_authorization.sql).
--
-- The conventions of 0001_initial.sql hold: secrets stored only as their 32-byte SHA-256 digest
-- (length CHECKed), BIGINT Unix seconds, "C" collation on identifiers, scopes as their normalized
-- string.

-- RFC 6749 §4.1.2: a code is used at most once, and a second use revokes what the first issued.
-- A code row therefore outlives its expiry by the purge retention (`purge` deletes it once
-- `expires_at <= now - revoked_retention`), so a late second use is still recognised as reuse.
CREATE TABLE authorization_codes (
    digest             BYTEA   NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    client_id          TEXT COLLATE "C" NOT NULL,
    username           TEXT COLLATE "C" NOT NULL,
    -- Compared exactly at the token endpoint (RFC 6749 §4.1.3).
    redirect_uri       TEXT    NOT NULL,
    -- Whether the authorization request named it; if so the token request must too.
    redirect_uri_given BOOLEAN NOT NULL,
    scope              TEXT    NOT NULL,
    -- RFC 7636 S256 challenge; NULL when the request carried none.
    code_challenge     TEXT,
    issued_at          BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    -- Set by the redemption compare-and-set, together with the grant it created.
    used_at            BIGINT,
    -- No REFERENCES grants: purge deletes a grant once its tokens are gone, which can be before
    -- the code's retention ends; the id then still names what a reuse would have revoked.
    grant_id           TEXT COLLATE "C"
);

-- Purge scans codes past expiry plus retention.
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);

-- A signed-in browser session, keyed by the digest of the cookie value.
CREATE TABLE sessions (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    username   TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Purge deletes sessions from their expiry on.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- A remembered consent: the user approved `scope` for the client. No foreign keys, as for
-- grants: `delete_client` deletes the client's consents itself, in its transaction.
CREATE TABLE consents (
    username   TEXT COLLATE "C" NOT NULL,
    client_id  TEXT COLLATE "C" NOT NULL,
    scope      TEXT   NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (username, client_id)
);

-- `delete_client` deletes by client; the primary key serves lookups by user.
CREATE INDEX consents_by_client ON consents (client_id);
