"""The durable notification queue in state.db: routing, budgets and digests decided at enqueue time.

Why decide at enqueue: `enqueue` runs inside the alert lifecycle's own transaction, so an alert
transition and the notifications it causes commit (or vanish) together; a crash between them cannot
lose a notification or send one for a transition that never happened. Routing and budget folding are
decided there too, by the event's time, so a receiver that was down for an hour gets exactly what it
would have got had it been up — not a flood folded into a digest because it all arrives at once.

Delivery rows are only ever moved forward (pending -> delivered | suppressed; folded rows point at the
digest that carried them); nothing here deletes one. All functions take the connection and do short
statements; none awaits, so a caller on the event loop holds the write lock for milliseconds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.alerts.notify_config import NotificationSettings, Route, TelegramChannel, parse_severity
from gateway.rules.findings import Severity

IsSuppressed = Callable[[int, int], bool]
"""`is_suppressed(alert_id, now)`: True while a person has suppressed that alert. The lifecycle's
`AlertLifecycle.is_suppressed` fits; it is asked at enqueue and again before each send, since a
queued message can outlive the moment it was written in."""


class AlertEventLike(Protocol):
    """What the notifier needs from the lifecycle's `AlertEvent`. `site_id` and `customer_id` are
    optional attributes (read with getattr): a single-site gateway need not set them."""

    @property
    def kind(self) -> str: ...
    @property
    def alert_id(self) -> int: ...
    @property
    def miner_id(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def ts(self) -> int: ...
    @property
    def detail(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationEvent:
    """A concrete AlertEventLike, for callers (and tests) that have no lifecycle event at hand."""

    kind: str
    alert_id: int
    miner_id: str
    rule_id: str
    severity: Severity
    ts: int
    detail: str = ""
    site_id: str | None = None
    customer_id: str | None = None
    suppressed: bool = False  # as the lifecycle's AlertEvent: suppressed when the transition happened


def canonical_json(payload: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces: the same payload always gives the same bytes (and the same signature)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_payload(event: AlertEventLike, site_id: str) -> dict[str, Any]:
    kind = getattr(event.kind, "value", event.kind)
    site = getattr(event, "site_id", None) or site_id
    payload: dict[str, Any] = {
        "v": 1,
        "type": "alert",
        "site_id": site,
        "customer_id": getattr(event, "customer_id", None),
        "alert_id": int(event.alert_id),
        "miner_id": event.miner_id,
        "rule_id": event.rule_id,
        "severity": parse_severity(event.severity).name,
        "kind": str(kind),
        "ts": int(event.ts),
        "detail": event.detail,
    }
    payload["key"] = f"{site}:alert:{payload['alert_id']}:{payload['kind']}:{payload['ts']}"
    return payload


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """Routing, targets and budgets, resolved from settings once: what `enqueue` needs and no more."""

    site_id: str
    routes: tuple[Route, ...]
    targets: Mapping[str, tuple[str, ...]]  # channel -> delivery targets ('' = the channel itself)
    budgets: Mapping[str, tuple[int, int]]  # channel -> (max_messages, window_s)
    channel_order: tuple[str, ...] = field(default=())

    @classmethod
    def from_settings(cls, settings: NotificationSettings, site_id: str) -> OutboxPolicy:
        targets = {
            name: tuple(ch.chat_ids) if isinstance(ch, TelegramChannel) else ("",)
            for name, ch in settings.channels.items()
        }
        budgets = {n: (c.budget.max_messages, c.budget.window_s) for n, c in settings.channels.items()}
        return cls(site_id, tuple(settings.routes), targets, budgets, tuple(settings.channels))

    def channels_for(self, payload: Mapping[str, Any]) -> list[str]:
        """Channels with at least one matching route, each once, in the order they are configured."""
        severity = Severity[payload["severity"]]
        matched = set()
        for route in self.routes:
            if route.channel in matched or payload["kind"] not in route.kinds:
                continue
            if severity > route.min_severity:  # lower is worse: P0 < P1
                continue
            if route.sites is not None and payload["site_id"] not in route.sites:
                continue
            if route.customers is not None and payload["customer_id"] not in route.customers:
                continue
            matched.add(route.channel)
        return [name for name in self.channel_order if name in matched]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: int
    channel: str
    target: str
    idem_key: str
    kind: str
    alert_id: int | None
    payload: str
    attempts: int
    next_attempt_at: float


def enqueue(
    conn: sqlite3.Connection,
    events: Iterable[AlertEventLike],
    now: int,
    policy: OutboxPolicy,
    is_suppressed: IsSuppressed | None = None,
) -> list[int]:
    """Write the notifications for `events`; return the new message ids.

    Runs inside the caller's transaction when one is open (the lifecycle's), else in its own. An
    event already enqueued (same site, alert, kind and time) is ignored, so a retried transition does
    not notify twice.
    """
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        close_due_windows(conn, now, policy, is_suppressed)
        created = [mid for event in events if (mid := _enqueue_one(conn, event, now, policy, is_suppressed))]
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    return created


def _enqueue_one(
    conn: sqlite3.Connection,
    event: AlertEventLike,
    now: int,
    policy: OutboxPolicy,
    is_suppressed: IsSuppressed | None,
) -> int | None:
    payload = event_payload(event, policy.site_id)
    channels = policy.channels_for(payload)
    if not channels:
        return None
    cursor = conn.execute(
        "INSERT INTO notification_messages (idem_key, kind, alert_id, severity, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING",
        (payload["key"], payload["kind"], payload["alert_id"], int(Severity[payload["severity"]]),
         canonical_json(payload), now),
    )  # fmt: skip
    if cursor.rowcount == 0 or cursor.lastrowid is None:
        return None
    message_id = cursor.lastrowid
    suppressed = bool(getattr(event, "suppressed", False)) or (
        is_suppressed is not None and is_suppressed(payload["alert_id"], now)
    )
    for channel in channels:
        window_end = None if suppressed else _take_budget(conn, channel, now, policy.budgets[channel])
        status = "suppressed" if suppressed else ("folded" if window_end is not None else "pending")
        for target in policy.targets[channel]:
            _insert_delivery(conn, message_id, payload["key"], channel, target, status, now, window_end)
    return message_id


def _insert_delivery(
    conn: sqlite3.Connection,
    message_id: int,
    message_key: str,
    channel: str,
    target: str,
    status: str,
    now: int,
    window_end: int | None = None,
) -> None:
    key = f"{message_key}:{channel}" + (f":{target}" if target else "")
    # next_attempt_at 0: due at once, whatever the caller's `now` (a sample time may run ahead of or
    # behind the wall clock the delivery side compares with).
    conn.execute(
        "INSERT INTO notification_outbox (message_id, channel, target, idem_key, status, next_attempt_at, "
        "window_end, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (message_id, channel, target, key, status, 0, window_end, now),
    )


def _take_budget(conn: sqlite3.Connection, channel: str, now: int, budget: tuple[int, int]) -> int | None:
    """Count one message against the channel's window. None: send it; an int: fold it into the digest
    due at that time. A window starts with the first message after the previous one ended."""
    max_messages, window_s = budget
    row = conn.execute(
        "SELECT window_end, sent FROM notification_budgets WHERE channel = ?", (channel,)
    ).fetchone()
    if row is None or now >= row[0]:
        conn.execute(
            "INSERT INTO notification_budgets (channel, window_start, window_end, sent) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (channel) DO UPDATE SET window_start = excluded.window_start, "
            "window_end = excluded.window_end, sent = 1",
            (channel, now, now + window_s),
        )
        return None
    if row[1] < max_messages:
        conn.execute("UPDATE notification_budgets SET sent = sent + 1 WHERE channel = ?", (channel,))
        return None
    return int(row[0])


def close_due_windows(
    conn: sqlite3.Connection, now: int, policy: OutboxPolicy, is_suppressed: IsSuppressed | None = None
) -> list[int]:
    """Turn every budget window that has ended with folded messages into one digest message per
    channel (delivered like any other message). Call inside a transaction. Returns the digest ids."""
    due = conn.execute(
        "SELECT DISTINCT channel, window_end FROM notification_outbox "
        "WHERE status = 'folded' AND digest_id IS NULL AND window_end <= ? ORDER BY window_end, channel",
        (now,),
    ).fetchall()
    digests = []
    for channel, window_end in due:
        rows = conn.execute(
            "SELECT o.message_id, o.target, m.alert_id, m.payload FROM notification_outbox o "
            "JOIN notification_messages m ON m.id = o.message_id "
            "WHERE o.status = 'folded' AND o.digest_id IS NULL AND o.channel = ? AND o.window_end = ? "
            "ORDER BY o.message_id, o.target",
            (channel, window_end),
        ).fetchall()
        items: dict[int, dict[str, Any]] = {}
        targets: list[str] = []
        for message_id, target, alert_id, payload in rows:
            if is_suppressed is not None and alert_id is not None and is_suppressed(alert_id, now):
                continue
            items.setdefault(message_id, json.loads(payload))
            if target not in targets:
                targets.append(target)
        digest_id = None
        if items:
            digest_id = _insert_digest(conn, channel, window_end, list(items.values()), targets, now, policy)
            digests.append(digest_id)
        conn.executemany(
            "UPDATE notification_outbox SET digest_id = ? WHERE status = 'folded' AND digest_id IS NULL "
            "AND channel = ? AND window_end = ? AND message_id = ?",
            [(digest_id, channel, window_end, message_id) for message_id in items],
        )
        # What is left folded belongs to alerts suppressed meanwhile: settle it so it is not looked at again.
        conn.execute(
            "UPDATE notification_outbox SET status = 'suppressed' WHERE status = 'folded' "
            "AND digest_id IS NULL AND channel = ? AND window_end = ?",
            (channel, window_end),
        )
    return digests


def _insert_digest(
    conn: sqlite3.Connection,
    channel: str,
    window_end: int,
    items: list[dict[str, Any]],
    targets: list[str],
    now: int,
    policy: OutboxPolicy,
) -> int:
    window_s = policy.budgets.get(channel, (0, 0))[1]
    keep = ("alert_id", "miner_id", "rule_id", "severity", "kind", "ts", "detail", "customer_id")
    payload: dict[str, Any] = {
        "v": 1,
        "type": "digest",
        "site_id": policy.site_id,
        "channel": channel,
        "window_start": window_end - window_s if window_s else None,
        "window_end": window_end,
        "count": len(items),
        "items": [{name: item.get(name) for name in keep} for item in items],
        "key": f"{policy.site_id}:digest:{channel}:{window_end}",
    }
    cursor = conn.execute(
        "INSERT INTO notification_messages (idem_key, kind, alert_id, severity, payload, created_at) "
        "VALUES (?, 'digest', NULL, NULL, ?, ?)",
        (payload["key"], canonical_json(payload), now),
    )
    assert cursor.lastrowid is not None
    for target in targets:
        _insert_delivery(conn, cursor.lastrowid, payload["key"], channel, target, "pending", now)
    return cursor.lastrowid


# --- the delivery side: one short statement each ------------------------------------------------------


def next_due(conn: sqlite3.Connection, channel: str) -> Delivery | None:
    """The channel's oldest undelivered row. Delivery is strictly in order per channel: the next row
    waits until this one is delivered (so a backlog arrives in the order it happened)."""
    row = conn.execute(
        "SELECT o.id, o.message_id, o.channel, o.target, o.idem_key, m.kind, m.alert_id, m.payload, "
        "o.attempts, o.next_attempt_at FROM notification_outbox o "
        "JOIN notification_messages m ON m.id = o.message_id "
        "WHERE o.channel = ? AND o.status = 'pending' ORDER BY o.message_id, o.target LIMIT 1",
        (channel,),
    ).fetchone()
    return None if row is None else Delivery(*row)


def mark_delivered(conn: sqlite3.Connection, delivery_id: int, now: float) -> None:
    conn.execute(
        "UPDATE notification_outbox SET status = 'delivered', delivered_at = ?, last_attempt_at = ?, "
        "attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
        (int(now), now, delivery_id),
    )


def mark_failed(conn: sqlite3.Connection, delivery_id: int, now: float, retry_at: float, error: str) -> None:
    conn.execute(
        "UPDATE notification_outbox SET attempts = attempts + 1, last_attempt_at = ?, next_attempt_at = ?, "
        "last_error = ? WHERE id = ? AND status = 'pending'",
        (now, retry_at, error[:500], delivery_id),
    )


def mark_suppressed(conn: sqlite3.Connection, delivery_id: int) -> None:
    conn.execute(
        "UPDATE notification_outbox SET status = 'suppressed' WHERE id = ? AND status = 'pending'",
        (delivery_id,),
    )


@dataclass(frozen=True, slots=True)
class ChannelCounts:
    pending: int
    oldest_pending_created_at: int | None
    delivered: int
    folded_waiting: int  # folded into a digest that is not yet due
    suppressed: int


def channel_counts(conn: sqlite3.Connection) -> dict[str, ChannelCounts]:
    rows = conn.execute(
        "SELECT channel, "
        "SUM(status = 'pending'), MIN(CASE WHEN status = 'pending' THEN created_at END), "
        "SUM(status = 'delivered'), SUM(status = 'folded' AND digest_id IS NULL), SUM(status = 'suppressed') "
        "FROM notification_outbox GROUP BY channel"
    ).fetchall()
    return {row[0]: ChannelCounts(row[1], row[2], row[3], row[4], row[5]) for row in rows}
