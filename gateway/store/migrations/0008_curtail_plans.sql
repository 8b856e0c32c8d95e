-- Curtailment plans (issue 7): every plan the running gateway adopted, so that a restarted gateway resumes
-- the latest plan still covering `now` and `hashinsight curtail show` can print it from state.db.
-- A bounded history: the service deletes plans older than `[curtail] plan_history_days` on each write.
-- Money is exact decimal strings; the periods are JSON (read back whole, never queried by field).
CREATE TABLE curtail_plans (
    id             INTEGER PRIMARY KEY,
    created_at     INTEGER NOT NULL,            -- UTC epoch s the plan was made
    first_start    INTEGER NOT NULL,            -- start of its first period
    end_ts         INTEGER NOT NULL,            -- end of its last period (exclusive)
    period_s       INTEGER NOT NULL CHECK (period_s > 0),
    status         TEXT NOT NULL,               -- optimal | fallback:<why>
    solver         TEXT NOT NULL,
    solve_s        REAL NOT NULL,
    objective_usd  TEXT,                        -- decimal string; NULL for a fallback without one
    lp_bound_usd   TEXT,
    explanation    TEXT NOT NULL,
    classes        TEXT NOT NULL,               -- JSON [{key, model, mode, count, ths_per_miner, kw_per_miner}]
    periods        TEXT NOT NULL,               -- JSON [{start, on: {class key: count}, price_per_kwh, forecast, reason}]
    CHECK (end_ts > first_start)
);
CREATE INDEX curtail_plans_by_time ON curtail_plans (first_start, end_ts);
CREATE INDEX curtail_plans_by_created ON curtail_plans (created_at);
