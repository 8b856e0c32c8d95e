"""Reading alerts back: lists for the API and CLI, one alert, its history. Read-only SQL on the
lifecycle's connection; the derived states (acked, suppressed) are computed against `now`, so an
expired suppression reads as over even before the next cycle records its `unsuppressed` event."""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Collection
from typing import Any

from gateway.alerts.model import Alert, EventKind, HistoryEntry
from gateway.rules.findings import Severity

ALERT_COLUMNS = (
    "id, miner_id, rule_id, severity, state, first_seen_at, opened_at, reopened_at, reopen_count, "
    "resolved_at, resolved_by, acked_at, acked_by, suppressed_until, suppressed_by, suppress_reason, "
    "last_value, threshold, detail"
)
DEFAULT_LIMIT = 500


class StateFilter(enum.StrEnum):
    """`open` is every alert not yet resolved (acked and suppressed included); `unacked` is the ones
    nobody has taken: open, not acked, not suppressed."""

    OPEN = "open"
    UNACKED = "unacked"
    ACKED = "acked"
    SUPPRESSED = "suppressed"
    RESOLVED = "resolved"
    ALL = "all"


_STATE_SQL: dict[StateFilter, str] = {
    StateFilter.OPEN: "state = 'open'",
    StateFilter.UNACKED: (
        "state = 'open' AND acked_at IS NULL AND (suppressed_until IS NULL OR suppressed_until <= :now)"
    ),
    StateFilter.ACKED: "state = 'open' AND acked_at IS NOT NULL",
    StateFilter.SUPPRESSED: "state = 'open' AND suppressed_until > :now",
    StateFilter.RESOLVED: "state = 'resolved'",
    StateFilter.ALL: "1",
}


def alert_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Alert:
    (id_, miner_id, rule_id, severity, state, first_seen_at, opened_at, reopened_at, reopen_count,
     resolved_at, resolved_by, acked_at, acked_by, suppressed_until, suppressed_by, suppress_reason,
     last_value, threshold, detail) = tuple(row)  # fmt: skip
    return Alert(
        id=id_,
        miner_id=miner_id,
        rule_id=rule_id,
        severity=Severity(severity),
        open=state == "open",
        first_seen_at=first_seen_at,
        opened_at=opened_at,
        reopened_at=reopened_at,
        reopen_count=reopen_count,
        resolved_at=resolved_at,
        resolved_by=resolved_by,
        acked_at=acked_at,
        acked_by=acked_by,
        suppressed_until=suppressed_until,
        suppressed_by=suppressed_by,
        suppress_reason=suppress_reason,
        last_value=last_value,
        threshold=threshold,
        detail=detail,
    )


def list_alerts(
    conn: sqlite3.Connection,
    *,
    now: int,
    state: StateFilter = StateFilter.OPEN,
    severities: Collection[Severity] = (),
    miner_id: str | None = None,
    rule_id: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Alert]:
    """Worst first, then oldest first for live alerts; newest first when resolved ones are included
    (a history view wants the latest)."""
    where = [_STATE_SQL[state]]
    params: dict[str, Any] = {"now": now, "limit": limit}
    if severities:
        where.append(f"severity IN ({', '.join(str(int(s)) for s in sorted(set(severities)))})")
    if miner_id is not None:
        where.append("miner_id = :miner_id")
        params["miner_id"] = miner_id
    if rule_id is not None:
        where.append("rule_id = :rule_id")
        params["rule_id"] = rule_id
    live = state not in (StateFilter.RESOLVED, StateFilter.ALL)
    order = "severity, opened_at, id" if live else "id DESC"
    sql = f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :limit"
    return [alert_from_row(row) for row in conn.execute(sql, params)]


def get_alerts(conn: sqlite3.Connection, ids: Collection[int]) -> dict[int, Alert]:
    rows = conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(ids)),),
    )
    return {alert.id: alert for alert in map(alert_from_row, rows)}


def history(conn: sqlite3.Connection, alert_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        "SELECT kind, ts, actor, detail, data FROM alert_events WHERE alert_id = ? ORDER BY id", (alert_id,)
    )
    return [
        HistoryEntry(
            kind=EventKind(kind),
            ts=ts,
            actor=actor,
            detail=detail,
            data=None if data is None else json.loads(data),
        )
        for kind, ts, actor, detail, data in rows
    ]


def suppressed_ids(conn: sqlite3.Connection, now: int, among: Collection[int] | None = None) -> set[int]:
    sql = "SELECT id FROM alerts WHERE suppressed_until > ?"
    params: list[Any] = [now]
    if among is not None:
        sql += " AND id IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(list(among)))
    return {row[0] for row in conn.execute(sql, params)}
