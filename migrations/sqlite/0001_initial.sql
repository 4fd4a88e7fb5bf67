-- tokenwarden SQLite schema, version 1.
--
-- An applied migration is never edited (CONVENTIONS "Storage"): change the schema with a new file.
--
-- Conventions of this schema:
-- * Tokens and client secrets are stored only as their 32-byte SHA-256 digest (CONVENTIONS §3):
--   a leaked database yields no usable token. Token tables are keyed by the digest and declared
--   WITHOUT ROWID, so the lookup by digest is one B-tree descent and there is no second key.
-- * Timestamps are INTEGER seconds since the Unix epoch (the unit of `exp`/`iat` on the wire).
-- * Scopes are stored as their normalized Display string ("a b c", sorted, deduplicated).
-- * List-valued client fields are JSON arrays in TEXT columns.
-- * No foreign keys from grants to clients or users: deleting a client keeps its (revoked)
--   grants and tokens until `purge`, as the memory store does, and the audit trail (`grant list`)
--   still names the deleted client.

CREATE TABLE clients (
    client_id     TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- SHA-256 of the client secret; NULL for a public client (RFC 6749 §2.1).
    secret_digest BLOB    CHECK (secret_digest IS NULL OR length(secret_digest) = 32),
    grant_types   TEXT    NOT NULL,  -- JSON array of RFC 6749 grant type names
    redirect_uris TEXT    NOT NULL,  -- JSON array, compared exactly
    scope         TEXT    NOT NULL,
    introspect    INTEGER NOT NULL CHECK (introspect IN (0, 1)),
    cors_origins  TEXT    NOT NULL,  -- JSON array
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE users (
    username      TEXT    NOT NULL PRIMARY KEY,
    password_hash TEXT    NOT NULL,  -- PHC-format argon2id
    created_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- A grant is one token family (RFC 9700 §4.14.2): revoking it ends every token in it.
CREATE TABLE grants (
    grant_id          TEXT    NOT NULL PRIMARY KEY,
    client_id         TEXT    NOT NULL,
    username          TEXT    NOT NULL,
    scope             TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    last_refreshed_at INTEGER,
    revoked_at        INTEGER
) WITHOUT ROWID;

-- `grant list|revoke --client`, `delete_client`, and the per-user account page; both ordered by
-- creation time, as `list_grants` returns them.
CREATE INDEX grants_by_client ON grants (client_id, created_at);
CREATE INDEX grants_by_user ON grants (username, created_at);

CREATE TABLE access_tokens (
    digest     BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    -- NULL for client_credentials tokens, which belong to no grant.
    grant_id   TEXT    REFERENCES grants (grant_id),
    client_id  TEXT    NOT NULL,
    username   TEXT,
    scope      TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;

-- Revoking a grant revokes its tokens; purge asks whether a grant still has tokens.
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
-- Deleting a client revokes its grant-less (client_credentials) tokens.
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);
-- Purge scans: expired rows, and rows revoked before the retention cutoff. Most rows are never
-- revoked, so that index is partial.
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_by_revocation ON access_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    digest           BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
    grant_id         TEXT    NOT NULL REFERENCES grants (grant_id),
    client_id        TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    scope            TEXT    NOT NULL,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    -- Set by the rotation compare-and-set; a used token is kept until it expires, because reuse
    -- detection needs it (RFC 9700 §4.14.2).
    used_at          INTEGER,
    -- The successor token response, sealed under a key derived from this token (crypto.rs).
    sealed_successor BLOB,
    revoked_at       INTEGER
) WITHOUT ROWID;

CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_revocation ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
