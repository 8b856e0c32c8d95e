-- The audit log: append-only and hash-chained (ARCHITECTURE §8). hash = sha256 over the canonical JSON
-- of {seq, ts, actor, action, target, details, prev_hash}; the first entry's prev_hash is 64 zeros.
-- The triggers stop accidents, not an attacker with the file: `gateway.audit.verify` is what detects
-- an edited or deleted entry, and the daily head in the Merkle root pins the chain's end.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    details    TEXT NOT NULL,        -- canonical JSON object
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_log_by_ts ON audit_log (ts);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
