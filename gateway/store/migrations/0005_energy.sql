-- Energy settlement inputs (issue 6). Everything an invoice was computed from stays reproducible:
-- a tariff keeps the exact bytes it was imported from (re-parsed on use), validity is set by
-- activation and never edited in place, prices are decimal strings, ownership is a history.
CREATE TABLE tariffs (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('urdb', 'hashinsight')),
    source_name   TEXT NOT NULL,               -- the file name it came from (display only)
    source_sha256 TEXT NOT NULL,
    source        BLOB NOT NULL,
    urdb_item     INTEGER,                      -- which URDB item, when the file holds several
    imported_at   INTEGER NOT NULL
);

-- A tariff in force over [valid_from, valid_to). Activating a tariff closes the open version at the
-- new one's start; a version is never edited, so an old month can always be re-settled as it was.
CREATE TABLE tariff_versions (
    id          INTEGER PRIMARY KEY,
    tariff_id   INTEGER NOT NULL REFERENCES tariffs(id),
    valid_from  INTEGER NOT NULL,
    valid_to    INTEGER,
    activated_at INTEGER NOT NULL,
    activated_by TEXT NOT NULL
);
CREATE INDEX tariff_versions_from ON tariff_versions(valid_from);

CREATE TABLE price_points (
    series        TEXT NOT NULL,
    start         INTEGER NOT NULL,            -- UTC epoch s of the interval start
    interval_s    INTEGER NOT NULL,
    price_per_kwh TEXT NOT NULL,               -- exact decimal string
    import_id     INTEGER NOT NULL,
    PRIMARY KEY (series, start)
) WITHOUT ROWID;

CREATE TABLE price_imports (
    id          INTEGER PRIMARY KEY,
    series      TEXT NOT NULL,
    format      TEXT NOT NULL,
    source_name TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    points      INTEGER NOT NULL,
    first_start INTEGER,
    last_start  INTEGER,
    imported_at INTEGER NOT NULL
);

-- Miner ownership over time: [valid_from, valid_to). miners.customer_id stays the current owner.
CREATE TABLE assignments (
    id          INTEGER PRIMARY KEY,
    miner_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    valid_from  INTEGER NOT NULL,
    valid_to    INTEGER,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX assignments_miner ON assignments(miner_id, valid_from);
