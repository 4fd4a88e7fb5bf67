-- tokenwarden PostgreSQL schema, version 1: the tables of migrations/sqlite/0001_initial.sql in
-- PostgreSQL's dialect. The two dialects keep the same version numbers, so a schema change is one
-- new file in each folder.
--
-- An applied migration is never edited (CONVENTIONS "Storage"): change the schema with a new file.
--
-- Conventions of this schema:
-- * Tokens and client secrets are stored only as their 32-byte SHA-256 digest (CONVENTIONS §3), in
--   BYTEA columns whose length is CHECKed: a leaked database yields no usable token, and a
--   truncated digest cannot be written.
-- * Timestamps are BIGINT seconds since the Unix epoch (the unit of `exp`/`iat` on the wire); the
--   store takes `now` from its caller, never from the database clock, so nodes agree with tests.
-- * Identifiers (`client_id`, `username`, `grant_id`) use the "C" collation: equality and order are
--   by bytes, as Rust's `str` compares — whatever locale the database was created with, `client
--   list` comes out in the same order as on SQLite and in memory.
-- * Scopes are stored as their normalized Display string ("a b c", sorted, deduplicated).
-- * List-valued client fields are TEXT[] arrays (JSON text on SQLite).
-- * No foreign keys from grants to clients or users: deleting a client keeps its (revoked)
--   grants and tokens until `purge`, as the memory store does, and the audit trail (`grant list`)
--   still names the deleted client.

CREATE TABLE clients (
    client_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- SHA-256 of the client secret; NULL for a public client (RFC 6749 §2.1).
    secret_digest BYTEA   CHECK (secret_digest IS NULL OR octet_length(secret_digest) = 32),
    -- RFC 6749 grant type names.
    grant_types   TEXT[]  NOT NULL CHECK (array_position(grant_types, NULL) IS NULL),
    -- Compared exactly.
    redirect_uris TEXT[]  NOT NULL CHECK (array_position(redirect_uris, NULL) IS NULL),
    scope         TEXT    NOT NULL,
    introspect    BOOLEAN NOT NULL,
    cors_origins  TEXT[]  NOT NULL CHECK (array_position(cors_origins, NULL) IS NULL),
    created_at    BIGINT  NOT NULL
);

CREATE TABLE users (
    username      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    password_hash TEXT   NOT NULL,  -- PHC-format argon2id
    created_at    BIGINT NOT NULL
);

-- A grant is one token family (RFC 9700 §4.14.2): revoking it ends every token in it. Its row is
-- also the family's lock: every transaction that changes a family's tokens locks it first.
CREATE TABLE grants (
    grant_id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id         TEXT COLLATE "C" NOT NULL,
    username          TEXT COLLATE "C" NOT NULL,
    scope             TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    last_refreshed_at BIGINT,
    revoked_at        BIGINT
);

-- `grant list|revoke --client`, `delete_client`, and the per-user account page; both ordered by
-- creation time, as `list_grants` returns them.
CREATE INDEX grants_by_client ON grants (client_id, created_at);
CREATE INDEX grants_by_user ON grants (username, created_at);

CREATE TABLE access_tokens (
    digest     BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    -- NULL for client_credentials tokens, which belong to no grant.
    grant_id   TEXT COLLATE "C" REFERENCES grants (grant_id),
    client_id  TEXT COLLATE "C" NOT NULL,
    username   TEXT COLLATE "C",
    scope      TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

-- Revoking a grant revokes its tokens; purge asks whether a grant still has tokens (and the
-- foreign key's check on deleting a grant uses it too: PostgreSQL does not index the referencing
-- side by itself).
CREATE INDEX access_tokens_by_grant ON access_tokens (grant_id) WHERE grant_id IS NOT NULL;
-- Deleting a client revokes its grant-less (client_credentials) tokens.
CREATE INDEX access_tokens_by_client ON access_tokens (client_id);
-- Purge scans: expired rows, and rows revoked before the retention cutoff. Most rows are never
-- revoked, so that index is partial.
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
CREATE INDEX access_tokens_by_revocation ON access_tokens (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    digest           BYTEA  NOT NULL PRIMARY KEY CHECK (octet_length(digest) = 32),
    grant_id         TEXT COLLATE "C" NOT NULL REFERENCES grants (grant_id),
    client_id        TEXT COLLATE "C" NOT NULL,
    username         TEXT COLLATE "C" NOT NULL,
    scope            TEXT   NOT NULL,
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    -- Set by the rotation compare-and-set; a used token is kept until it expires, because reuse
    -- detection needs it (RFC 9700 §4.14.2).
    used_at          BIGINT,
    -- The successor token response, sealed under a key derived from this token (crypto.rs).
    sealed_successor BYTEA,
    revoked_at       BIGINT
);

CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_revocation ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
