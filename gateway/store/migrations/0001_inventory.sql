-- The miner inventory: what the gateway polls. Ports are per miner because a site (or a simulator
-- run by a non-root user) may serve a firmware's web API somewhere other than 80.
CREATE TABLE miners (
    id            TEXT PRIMARY KEY,            -- stable id: the MAC when known, else the address
    ip            TEXT NOT NULL UNIQUE,
    family        TEXT NOT NULL,               -- firmware family (antminer, whatsminer, braiins ...)
    make          TEXT,
    model         TEXT,
    profile_key   TEXT,
    firmware_version TEXT,
    mac           TEXT,
    serial        TEXT,
    hostname      TEXT,
    rpc_port      INTEGER NOT NULL DEFAULT 4028,
    web_port      INTEGER NOT NULL DEFAULT 80,
    v3_port       INTEGER NOT NULL DEFAULT 4433,
    customer_id   TEXT,
    rack          TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
