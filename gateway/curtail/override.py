"""Manual overrides: a person holds, forces on or forces off a miner until an expiry; they win over the plan.

An override always expires (there is no "forever": a forgotten force-off would idle a machine for months
unnoticed). Setting and clearing one is audited in the same transaction as the row itself.

`resolve` is pure: given the active overrides, it says which miners selection must leave alone (hold)
and which must be driven to a state regardless of the plan (force_on / force_off).
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway import audit

MAX_OVERRIDE_S = 7 * 86_400


class OverrideAction(enum.StrEnum):
    HOLD = "hold"
    FORCE_ON = "force_on"
    FORCE_OFF = "force_off"


@dataclass(frozen=True, slots=True, kw_only=True)
class Override:
    id: int
    miner_id: str
    action: OverrideAction
    created_ts: int
    expires_ts: int
    actor: str
    note: str = ""

    def active(self, now: int) -> bool:
        return self.created_ts <= now < self.expires_ts


def resolve(overrides: Iterable[Override], now: int) -> dict[str, OverrideAction]:
    """Active override per miner; when a miner has several, the newest wins."""
    result: dict[str, tuple[int, OverrideAction]] = {}
    for item in overrides:
        if not item.active(now):
            continue
        seen = result.get(item.miner_id)
        if seen is None or item.id > seen[0]:
            result[item.miner_id] = (item.id, item.action)
    return {miner: action for miner, (_, action) in result.items()}


def add(
    conn: sqlite3.Connection,
    *,
    miner_id: str,
    action: OverrideAction | str,
    duration_s: int,
    actor: str,
    now: int,
    note: str = "",
    known_miners: Mapping[str, object] | None = None,
) -> Override:
    """Record an override (and its audit entry) in one transaction. Bad input changes nothing."""
    try:
        kind = OverrideAction(action)
    except ValueError:
        raise ValueError(f"override action {action!r}: use hold, force_on or force_off") from None
    if not 0 < duration_s <= MAX_OVERRIDE_S:
        raise ValueError(f"override duration {duration_s}s: must be 1..{MAX_OVERRIDE_S} s (7 days)")
    if not actor.strip():
        raise ValueError("an override needs an actor")
    if known_miners is not None and miner_id not in known_miners:
        raise ValueError(f"miner {miner_id!r} is not in the inventory")
    expires = now + duration_s
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO curtail_overrides (miner_id, action, created_ts, expires_ts, actor, note) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (miner_id, kind.value, now, expires, actor, note),
        )
        override_id = int(cursor.lastrowid or 0)
        details = {"override_id": override_id, "action": kind.value, "expires_ts": expires, "note": note}
        audit.record(conn, actor, "curtail.override", miner_id, details, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Override(
        id=override_id,
        miner_id=miner_id,
        action=kind,
        created_ts=now,
        expires_ts=expires,
        actor=actor,
        note=note,
    )


def clear(conn: sqlite3.Connection, *, miner_id: str, actor: str, now: int) -> int:
    """End every active override of `miner_id` now; returns how many were ended."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "UPDATE curtail_overrides SET cleared_ts = ?, expires_ts = MAX(?, created_ts + 1) "
            "WHERE miner_id = ? AND cleared_ts IS NULL AND expires_ts > ?",
            (now, now, miner_id, now),
        )
        count = cursor.rowcount
        if count:
            audit.record(conn, actor, "curtail.override_clear", miner_id, {"cleared": count}, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return count


def active(conn: sqlite3.Connection, now: int) -> list[Override]:
    rows = conn.execute(
        "SELECT id, miner_id, action, created_ts, expires_ts, actor, note FROM curtail_overrides "
        "WHERE cleared_ts IS NULL AND created_ts <= ? AND expires_ts > ? ORDER BY id",
        (now, now),
    ).fetchall()
    return [
        Override(
            id=r[0],
            miner_id=r[1],
            action=OverrideAction(r[2]),
            created_ts=r[3],
            expires_ts=r[4],
            actor=r[5],
            note=r[6],
        )
        for r in rows
    ]
