-- Alerts, their history, and the per-(miner, rule) tracking that debounce and clear windows need.
-- Times are UTC epoch seconds; severity is 0..3 (P0 worst).

-- One row per alert. A flapping condition that comes back within the rule's cooldown reopens the
-- same row (reopen_count, reopened_at) instead of creating a new one.
CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    miner_id        TEXT NOT NULL,
    rule_id         TEXT NOT NULL,
    severity        INTEGER NOT NULL CHECK (severity BETWEEN 0 AND 3),
    state           TEXT NOT NULL CHECK (state IN ('open', 'resolved')),
    first_seen_at   INTEGER NOT NULL,          -- sample time the condition was first seen firing
    opened_at       INTEGER NOT NULL,          -- when the debounce was met and the alert opened
    reopened_at     INTEGER,
    reopen_count    INTEGER NOT NULL DEFAULT 0,
    resolved_at     INTEGER,
    resolved_by     TEXT,                      -- 'system' (clear window) or the person who resolved it
    acked_at        INTEGER,
    acked_by        TEXT,
    suppressed_until INTEGER,
    suppressed_by   TEXT,
    suppress_reason TEXT,
    last_value      REAL,
    threshold       REAL,
    detail          TEXT NOT NULL DEFAULT ''
);
-- The invariant the lifecycle promises: at most one open alert per (miner, rule), enforced here too.
CREATE UNIQUE INDEX alerts_one_open ON alerts (miner_id, rule_id) WHERE state = 'open';
CREATE INDEX alerts_by_state ON alerts (state, severity, opened_at);
CREATE INDEX alerts_by_miner ON alerts (miner_id, id);
CREATE INDEX alerts_suppressed ON alerts (suppressed_until) WHERE suppressed_until IS NOT NULL;

-- Full history: every transition and every human action, with who and when.
CREATE TABLE alert_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id  INTEGER NOT NULL REFERENCES alerts (id),
    kind      TEXT NOT NULL
              CHECK (kind IN ('opened', 'acked', 'suppressed', 'unsuppressed', 'resolved', 'reopened')),
    ts        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    data      TEXT                              -- JSON: value, until, reason, note ...
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, id);

-- Debounce / clear-window / cooldown memory, one row per (miner, rule) that is not idle. Lives in
-- SQLite so a restart in the middle of a debounce neither forgets it nor opens early.
--   phase pending:  firing seen, debounce not yet met (alert_id NULL)
--   phase firing:   alert open, condition holding
--   phase clearing: alert open, condition clear for `held_s` seconds over `count` findings
--   phase cooldown: alert resolved; a firing run within cooldown_until reopens it (count > 0: debouncing)
CREATE TABLE alert_tracks (
    miner_id       TEXT NOT NULL,
    rule_id        TEXT NOT NULL,
    phase          TEXT NOT NULL CHECK (phase IN ('pending', 'firing', 'clearing', 'cooldown')),
    alert_id       INTEGER REFERENCES alerts (id),
    count          INTEGER NOT NULL DEFAULT 0,  -- consecutive findings of the awaited condition
    held_s         INTEGER NOT NULL DEFAULT 0,  -- seconds it has held (paused spans not counted)
    first_ts       INTEGER,                     -- sample time of the run's first finding
    last_ts        INTEGER,                     -- sample time of the run's latest finding
    paused         INTEGER NOT NULL DEFAULT 0,  -- an unknown/suspended/missing finding since last_ts
    severity       INTEGER NOT NULL DEFAULT 3,
    cooldown_until INTEGER,
    PRIMARY KEY (miner_id, rule_id)
) WITHOUT ROWID;
