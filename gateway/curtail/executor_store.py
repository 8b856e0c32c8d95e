"""The executor's rows in state.db: events, actions and per-miner memory, each change with its audit entry.

Every write here runs in one `BEGIN IMMEDIATE` transaction together with its `gateway.audit` entry, so
the audit chain and the action log can never disagree. Reads are plain SELECTs (the CLI's `show`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gateway import audit


@dataclass(slots=True, kw_only=True)
class MinerMemory:
    """What the executor remembers about one miner across restarts (mutable: it is the executor's own
    state, never handed out)."""

    miner_id: str
    intended: str | None = None  # sleep | normal | low | high
    intended_ts: int | None = None
    last_change_ts: int | None = None
    curtailed_s: int = 0
    cycles: int = 0
    failures: int = 0
    retry_after_ts: int | None = None


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def load_memory(conn: sqlite3.Connection) -> dict[str, MinerMemory]:
    rows = conn.execute(
        "SELECT miner_id, intended, intended_ts, last_change_ts, curtailed_s, cycles, failures, "
        "retry_after_ts FROM curtail_miner_state"
    ).fetchall()
    return {
        r[0]: MinerMemory(
            miner_id=r[0],
            intended=r[1],
            intended_ts=r[2],
            last_change_ts=r[3],
            curtailed_s=r[4],
            cycles=r[5],
            failures=r[6],
            retry_after_ts=r[7],
        )
        for r in rows
    }


def save_memory(conn: sqlite3.Connection, memory: MinerMemory) -> None:
    """Inside the caller's transaction."""
    conn.execute(
        "INSERT INTO curtail_miner_state (miner_id, intended, intended_ts, last_change_ts, curtailed_s, "
        "cycles, failures, retry_after_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(miner_id) DO UPDATE SET intended=excluded.intended, intended_ts=excluded.intended_ts, "
        "last_change_ts=excluded.last_change_ts, curtailed_s=excluded.curtailed_s, cycles=excluded.cycles, "
        "failures=excluded.failures, retry_after_ts=excluded.retry_after_ts",
        (
            memory.miner_id,
            memory.intended,
            memory.intended_ts,
            memory.last_change_ts,
            memory.curtailed_s,
            memory.cycles,
            memory.failures,
            memory.retry_after_ts,
        ),
    )


def insert_event(
    conn: sqlite3.Connection,
    *,
    now: int,
    source: str,
    reason: str,
    targets: Mapping[str, int],
    asked_w: float,
    skips: Mapping[str, int],
    actor: str,
) -> int:
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO curtail_events (started_ts, source, reason, targets, asked_w, skips) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                now,
                source,
                reason,
                json.dumps(dict(targets), sort_keys=True),
                asked_w,
                json.dumps(dict(skips)),
            ),
        )
        event_id = int(cursor.lastrowid or 0)
        details = {
            "event_id": event_id,
            "source": source,
            "reason": reason,
            "targets": dict(targets),
            "asked_w": round(asked_w),
            "skips": dict(skips),
        }
        audit.record(conn, actor, "curtail.event", f"event:{event_id}", details, now)
    return event_id


def insert_action(
    conn: sqlite3.Connection,
    *,
    event_id: int | None,
    now: int,
    miner_id: str,
    action: str,
    reason: str,
    attempt: int,
    baseline_w: float | None,
    expected_w: float | None,
    memory: MinerMemory,
    actor: str,
) -> int:
    """The action row, the miner's new intention and the audit entry, before any I/O to the miner:
    a crash mid-dispatch leaves the intention recorded, and drift detection finishes the job."""
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO curtail_actions (event_id, ts, miner_id, action, reason, attempt, status, "
            "baseline_w, expected_w) VALUES (?, ?, ?, ?, ?, ?, 'issued', ?, ?)",
            (event_id, now, miner_id, action, reason, attempt, baseline_w, expected_w),
        )
        action_id = int(cursor.lastrowid or 0)
        save_memory(conn, memory)
        details: dict[str, Any] = {
            "action_id": action_id,
            "event_id": event_id,
            "reason": reason,
            "attempt": attempt,
            "baseline_w": None if baseline_w is None else round(baseline_w),
            "expected_w": None if expected_w is None else round(expected_w),
        }
        audit.record(conn, actor, f"curtail.{action}", miner_id, details, now)
    return action_id


def finish_action(
    conn: sqlite3.Connection,
    *,
    action_id: int,
    miner_id: str,
    status: str,
    now: int,
    detail: str,
    memory: MinerMemory,
    actor: str,
) -> None:
    """An action's outcome (verified / failed / not_verified) with the miner's memory and the audit entry."""
    with transaction(conn):
        conn.execute(
            "UPDATE curtail_actions SET status = ?, verified_ts = ?, detail = ? WHERE id = ?",
            (status, now if status == "verified" else None, detail[:500], action_id),
        )
        save_memory(conn, memory)
        audit.record(
            conn, actor, f"curtail.{status}", miner_id, {"action_id": action_id, "detail": detail[:500]}, now
        )


def set_realised(conn: sqlite3.Connection, event_id: int, realised_w: float, now: int) -> None:
    with transaction(conn):
        conn.execute(
            "UPDATE curtail_events SET realised_w = ?, realised_ts = ? WHERE id = ?",
            (realised_w, now, event_id),
        )


def recent_events(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, started_ts, source, reason, targets, asked_w, realised_w, skips FROM curtail_events "
        "ORDER BY id DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        {
            "id": r[0],
            "started_ts": r[1],
            "source": r[2],
            "reason": r[3],
            "targets": json.loads(r[4]),
            "asked_kw": round(r[5] / 1000, 3),
            "realised_kw": None if r[6] is None else round(r[6] / 1000, 3),
            "skips": json.loads(r[7]),
        }
        for r in rows
    ]


def actions_of(conn: sqlite3.Connection, event_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, ts, miner_id, action, reason, attempt, status, baseline_w, expected_w, detail "
        "FROM curtail_actions WHERE event_id = ? ORDER BY id",
        (event_id,),
    ).fetchall()
    keys = (
        "id",
        "ts",
        "miner_id",
        "action",
        "reason",
        "attempt",
        "status",
        "baseline_w",
        "expected_w",
        "detail",
    )
    return [dict(zip(keys, tuple(r), strict=True)) for r in rows]
