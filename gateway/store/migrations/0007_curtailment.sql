-- Curtailment executor (issue 7): what it asked of each miner, what it believes, and what people forced.
-- Energy is never stored here (the meter owns it); watts are the readings the executor verified against.

-- One row per control action the executor issued (or would have issued, in a dry run).
-- status: issued -> verified (read back and telemetry agree) | failed (budget spent) | dry_run
CREATE TABLE curtail_actions (
    id            INTEGER PRIMARY KEY,
    event_id      INTEGER REFERENCES curtail_events (id),
    ts            INTEGER NOT NULL,             -- UTC epoch seconds the action was issued
    miner_id      TEXT NOT NULL,
    action        TEXT NOT NULL,                -- sleep | wake | set_power | set_mode
    reason        TEXT NOT NULL,                -- plan | drift | override | fail_policy
    attempt       INTEGER NOT NULL DEFAULT 1,
    status        TEXT NOT NULL,
    baseline_w    REAL,                         -- power before the action (the fall is measured from it)
    expected_w    REAL,                         -- power the action should leave (profile sleep watts ...)
    verified_ts   INTEGER,
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX curtail_actions_by_miner ON curtail_actions (miner_id, ts);
CREATE INDEX curtail_actions_by_status ON curtail_actions (status);

-- One row per application of a target (a plan period, an override, a fail-policy response).
CREATE TABLE curtail_events (
    id            INTEGER PRIMARY KEY,
    started_ts    INTEGER NOT NULL,
    source        TEXT NOT NULL,                -- plan | override | fail_policy | manual
    reason        TEXT NOT NULL,
    targets       TEXT NOT NULL,                -- JSON {class key: miners on}
    asked_w       REAL NOT NULL DEFAULT 0,      -- reduction asked: sum of (baseline - expected)
    realised_w    REAL,                         -- reduction realised, from the latest metered power
    realised_ts   INTEGER,
    skips         TEXT NOT NULL DEFAULT '{}',   -- JSON {reason: count}
    dry_run       INTEGER NOT NULL DEFAULT 0
);

-- The executor's memory per miner: its intention, when the miner last changed, and its wear.
CREATE TABLE curtail_miner_state (
    miner_id        TEXT PRIMARY KEY,
    intended        TEXT,                       -- sleep | normal | low | high; NULL: no opinion
    intended_ts     INTEGER,
    last_change_ts  INTEGER,
    curtailed_s     INTEGER NOT NULL DEFAULT 0,
    cycles          INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0, -- consecutive failed attempts (the retry budget)
    retry_after_ts  INTEGER
);

-- Manual overrides: hold / force_on / force_off a miner until `expires_ts` (they win over the plan).
CREATE TABLE curtail_overrides (
    id            INTEGER PRIMARY KEY,
    miner_id      TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('hold', 'force_on', 'force_off')),
    created_ts    INTEGER NOT NULL,
    expires_ts    INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    note          TEXT NOT NULL DEFAULT '',
    cleared_ts    INTEGER,
    CHECK (expires_ts > created_ts)
);
CREATE INDEX curtail_overrides_active ON curtail_overrides (miner_id, expires_ts);
