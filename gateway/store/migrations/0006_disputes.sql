-- Reconciliation disputes (issue 6): one ticket per signed dispute package. The package (ZIP) is written
-- first and the ticket second, so a crash can leave a package without a ticket (rerun: a new ticket) but
-- never a ticket pointing at nothing. The package's sha256 pins which file the ticket is about.
CREATE TABLE dispute_tickets (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('meter', 'pool')),
    period_start    TEXT NOT NULL,            -- first day, ISO date (site-local for meter, UTC for pool)
    period_end      TEXT NOT NULL,            -- last day, inclusive
    status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    summary         TEXT NOT NULL,
    package_path    TEXT NOT NULL,
    package_sha256  TEXT NOT NULL,
    created_at      INTEGER NOT NULL,         -- UTC epoch seconds
    CHECK (period_start <= period_end)
);
CREATE INDEX dispute_tickets_by_status ON dispute_tickets (status, created_at);
