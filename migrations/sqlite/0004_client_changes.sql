-- tokenwarden SQLite schema, version 4: a change counter for `clients`, so a server may keep the
-- clients it authenticates in memory and still see at once what another process (the admin CLI)
-- did to them.
--
-- The conventions of 0001_initial.sql hold.

-- One row. `generation` goes up by one in the same transaction as every insert, update or delete
-- of a `clients` row — whichever process or connection makes it, since the triggers below live in
-- the database, not in the code. A reader that sees the same generation as when it cached a
-- client knows the cached row is still the stored one (both reads are snapshots of committed
-- state).
CREATE TABLE client_changes (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);

INSERT INTO client_changes (id, generation) VALUES (1, 0);

CREATE TRIGGER clients_changed_by_insert AFTER INSERT ON clients
BEGIN
    UPDATE client_changes SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER clients_changed_by_update AFTER UPDATE ON clients
BEGIN
    UPDATE client_changes SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER clients_changed_by_delete AFTER DELETE ON clients
BEGIN
    UPDATE client_changes SET generation = generation + 1 WHERE id = 1;
END;
