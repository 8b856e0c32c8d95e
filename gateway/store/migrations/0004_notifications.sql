-- The notification outbox (gateway/alerts/outbox.py). A message is written once, in the same
-- transaction as the alert transition that caused it; each (message, channel, target) it is routed to
-- gets a delivery row that is retried with backoff until the receiver answers success. Rows are never
-- deleted by the notifier: a receiver that is down keeps its rows pending, visibly.

-- One per alert event (or per digest). `payload` is canonical JSON and is exactly the webhook body,
-- so every attempt of a delivery sends the same bytes.
CREATE TABLE notification_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- enqueue order = delivery order per channel
    idem_key    TEXT NOT NULL UNIQUE,                -- site/alert/kind/ts: enqueuing an event twice is a no-op
    kind        TEXT NOT NULL,                       -- opened|reopened|resolved|... or digest
    alert_id    INTEGER,                             -- NULL for a digest
    severity    INTEGER,                             -- 0 = P0; NULL for a digest
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL REFERENCES notification_messages(id),
    channel         TEXT NOT NULL,                   -- the channel's name in site.toml
    target          TEXT NOT NULL DEFAULT '',        -- Telegram chat id; '' for webhook/email
    idem_key        TEXT NOT NULL UNIQUE,            -- message key + channel + target; sent to receivers
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'folded', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,                   -- epoch s; REAL so sub-second backoff survives restarts
    last_attempt_at REAL,
    delivered_at    INTEGER,                         -- set only after the receiver's success reply
    last_error      TEXT,
    window_end      INTEGER,                         -- folded rows: when the digest that carries them is due
    digest_id       INTEGER REFERENCES notification_messages(id),  -- folded rows: that digest
    created_at      INTEGER NOT NULL,
    UNIQUE (message_id, channel, target)
);

CREATE INDEX notification_outbox_due ON notification_outbox (channel, status, message_id, target);
CREATE INDEX notification_outbox_folded ON notification_outbox (status, window_end) WHERE status = 'folded';

-- The current budget window of each channel: at most N messages go out individually inside it.
CREATE TABLE notification_budgets (
    channel      TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    sent         INTEGER NOT NULL
);
