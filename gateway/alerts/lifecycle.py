"""The alert lifecycle: turns each cycle's findings into few, trustworthy alerts, and records what
people do about them.

The per-(miner, rule) state machine (debounce, clear window, cooldown, and what unknown/suspended
findings do to the clocks) is documented and implemented in `gateway.alerts.tracks`; its state is
persisted in `alert_tracks`, so a restart resumes a debounce or a clear window exactly where it was.
The in-memory tracks are a cache of that table: this object is its only writer, and a failed commit
reloads the cache, so memory never runs ahead of the database.

Human actions (ack, batch ack, suppress, unsuppress, manual resolve) write the alert, its history
event and an audit entry in one transaction. Suppression changes no transition; it marks events
`suppressed` so the notifier stays quiet, and ends by itself at its time (an `unsuppressed` event at
the first cycle after). A reopened alert loses its ack (it is a new occurrence) but keeps a
suppression that has not expired.

Threading: every public method takes one lock and runs its transaction to the end. In the gateway
both the cycle sink and the API handlers run on the event loop thread and call these methods
directly: each is one short SQLite transaction (milliseconds), cheaper than a hop to a thread, and
state.db keeps exactly one writer, the runtime's connection, used here.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from gateway import audit
from gateway.alerts import queries
from gateway.alerts.model import (
    DEFAULT_POLICY,
    SYSTEM_ACTOR,
    Alert,
    AlertConflict,
    AlertError,
    AlertEvent,
    AlertNotFound,
    AlertPolicy,
    EventKind,
    HistoryEntry,
    validate_actor,
    validate_text,
)
from gateway.alerts.tracks import Cycle, Key, Track, Tracker, load_tracks, write_tracks
from gateway.rules.findings import Finding, FindingState, Severity

log = logging.getLogger(__name__)

# (miner_id, rule_id) -> the effective policy, for timing overridden per model: e.g.
# `lambda miner, rule: table.rule(rule, inventory[miner].profile_key)`. A KeyError means "unknown".
PolicyLookup = Callable[[str, str], AlertPolicy]
# The notifier's `enqueue(conn, events, now)`: called inside the lifecycle's transaction, after the
# alert rows are written and before COMMIT, so a transition and its notification commit together
# (ARCHITECTURE §4: a business row and its outbox row in one transaction). If it raises, neither does.
Enqueue = Callable[[sqlite3.Connection, Sequence[AlertEvent], int], object]
# An event and the JSON data its history row keeps (value, until, reason, note ...).
_Event = tuple[AlertEvent, dict[str, Any] | None]


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class AlertLifecycle:
    """Owns alert state in state.db. `apply` once per poll cycle; human actions from the API.

    `policies` maps rule id to its `AlertPolicy` (the catalog's rules satisfy it), or is a
    `PolicyLookup` by (miner, rule); an unknown rule gets `DEFAULT_POLICY` and one warning.
    `enqueue`, if given, receives every batch of events (cycle transitions and human actions alike)
    inside the transaction that writes them."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        policies: Mapping[str, AlertPolicy] | PolicyLookup | None = None,
        *,
        enqueue: Enqueue | None = None,
    ) -> None:
        self._conn = conn
        self._policies: Mapping[str, AlertPolicy] | PolicyLookup = policies or {}
        self._enqueue = enqueue
        self._lock = threading.RLock()
        self._unknown_rules: set[str] = set()
        self._tracker = Tracker(load_tracks(conn), self.policy)

    # --- the cycle ------------------------------------------------------------------------------------

    def apply(self, findings: Iterable[Finding], now: int) -> list[AlertEvent]:
        """Feed one cycle's findings; returns (and enqueues) the committed transitions.

        The findings must cover every pair in `pairs_needing_clear()` (firing, clear, unknown or
        suspended): a tracked pair without one is treated as unknown. Work is proportional to the
        findings plus the tracked pairs; an untracked clear or unknown finding costs a dict lookup.
        A second finding for the same pair in one call is judged after the first is committed."""
        with self._lock:
            tracker, cycle = self._tracker, Cycle()
            tracker.expire_cooldowns(cycle, now)
            events: list[AlertEvent] = []
            seen: set[Key] = set()
            in_cycle: set[Key] = set()
            for finding in findings:
                key = (finding.miner_id, finding.rule_id)
                if key in in_cycle:
                    events += self._commit(cycle, now)
                    cycle, in_cycle = Cycle(), set()
                in_cycle.add(key)
                seen.add(key)
                if finding.state is FindingState.FIRING:
                    tracker.firing(finding, cycle)
                elif finding.state is FindingState.CLEAR:
                    tracker.clear(finding, cycle, now)
                elif (track := tracker.tracks.get(key)) is not None:
                    tracker.pause(track, cycle)
            tracker.pause_missing(seen, cycle)
            return events + self._commit(cycle, now)

    def pairs_needing_clear(self) -> set[tuple[str, str]]:
        """The (miner, rule) pairs whose clear findings matter: pending, open, or debouncing a
        reopen. The engine may leave out clear findings for every other pair."""
        with self._lock:
            return self._tracker.needing_clear()

    def policy(self, miner_id: str, rule_id: str) -> AlertPolicy:
        try:
            if callable(self._policies):
                return self._policies(miner_id, rule_id)
            return self._policies[rule_id]
        except KeyError:
            if rule_id not in self._unknown_rules:
                self._unknown_rules.add(rule_id)
                log.warning("no alert policy for rule %r; using the default debounce", rule_id)
            return DEFAULT_POLICY

    def _commit(self, cycle: Cycle, now: int) -> list[AlertEvent]:
        conn = self._conn
        expired = conn.execute(
            "SELECT 1 FROM alerts WHERE suppressed_until IS NOT NULL AND suppressed_until <= ? LIMIT 1",
            (now,),
        ).fetchone()
        if cycle.empty and expired is None:
            return []
        events: list[_Event] = []
        with self._writing():
            for alert_id, miner_id, rule_id, severity in conn.execute(
                "UPDATE alerts SET suppressed_until = NULL, suppressed_by = NULL, suppress_reason = NULL "
                "WHERE suppressed_until IS NOT NULL AND suppressed_until <= ? "
                "RETURNING id, miner_id, rule_id, severity",
                (now,),
            ).fetchall():
                key = (miner_id, rule_id)
                events.append((_event(EventKind.UNSUPPRESSED, alert_id, key, Severity(severity), now,
                                      "suppression ended"), None))  # fmt: skip
            # One executemany, then the new ids by key: a site-wide outage opens thousands at once.
            (last_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM alerts").fetchone()
            conn.executemany(
                "INSERT INTO alerts (miner_id, rule_id, severity, state, first_seen_at, opened_at, "
                "last_value, threshold, detail) VALUES (?, ?, ?, 'open', ?, ?, ?, ?, ?)",
                [(t.miner_id, t.rule_id, int(f.severity), first, now, f.value, f.threshold, f.detail)
                 for t, f, first in cycle.opens],
            )  # fmt: skip
            new_ids: dict[Key, int] = {}
            if cycle.opens:
                rows = conn.execute("SELECT id, miner_id, rule_id FROM alerts WHERE id > ?", (last_id,))
                new_ids = {(miner_id, rule_id): alert_id for alert_id, miner_id, rule_id in rows}
            for track, finding, first_seen in cycle.opens:
                track.alert_id = new_ids[(track.miner_id, track.rule_id)]
                events.append(_finding_event(EventKind.OPENED, track, finding, first_seen, now))
            for track, finding, first_seen in cycle.reopens:
                conn.execute(
                    "UPDATE alerts SET state = 'open', severity = ?, reopened_at = ?, "
                    "reopen_count = reopen_count + 1, resolved_at = NULL, resolved_by = NULL, "
                    "acked_at = NULL, acked_by = NULL, last_value = ?, threshold = ?, detail = ? "
                    "WHERE id = ?",
                    (int(finding.severity), now, finding.value, finding.threshold, finding.detail,
                     track.alert_id),
                )  # fmt: skip
                events.append(_finding_event(EventKind.REOPENED, track, finding, first_seen, now))
            conn.executemany(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
                [(now, SYSTEM_ACTOR, alert_id) for alert_id, *_ in cycle.resolves],
            )
            for alert_id, key, severity, detail in cycle.resolves:
                events.append((_event(EventKind.RESOLVED, alert_id, key, severity, now, detail), None))
            conn.executemany("UPDATE alerts SET last_value = ?, detail = ? WHERE id = ?", cycle.values)
            write_tracks(conn, cycle)
            return self._publish(events, now)

    # --- human actions ---------------------------------------------------------------------------------

    def ack(self, alert_id: int, actor: str, now: int, note: str = "") -> list[AlertEvent]:
        return self.ack_many([alert_id], actor, now, note)

    def ack_many(self, alert_ids: Collection[int], actor: str, now: int, note: str = "") -> list[AlertEvent]:
        """Ack every listed alert, all or nothing: an unknown or resolved id refuses the whole batch.
        An alert already acked is left as it was (no event: nothing happened)."""
        actor, note = validate_actor(actor), validate_text(note, "note")
        ids = list(dict.fromkeys(alert_ids))
        if not ids:
            raise AlertError("no alert ids given")
        events: list[_Event] = []
        with self._lock, self._writing():
            todo = [alert for alert in self._open_alerts(ids, "ack") if alert.acked_at is None]
            self._conn.executemany(
                "UPDATE alerts SET acked_at = ?, acked_by = ? WHERE id = ?",
                [(now, actor, a.id) for a in todo],
            )
            for alert in todo:
                events.append(self._human(alert, EventKind.ACKED, actor, now, note, _note(note)))
            return self._publish(events, now)

    def suppress(self, alert_id: int, actor: str, until: int, reason: str, now: int) -> list[AlertEvent]:
        """Silence an open alert's notifications until `until` (epoch s) for `reason`; the lifecycle
        keeps tracking it. Suppressing again replaces the time and reason."""
        actor, reason = validate_actor(actor), validate_text(reason, "reason")
        if not reason:
            raise AlertError("a suppression needs a reason")
        if until <= now:
            raise AlertError(f"until ({until}) must be in the future (now {now})")
        events: list[_Event] = []
        with self._lock, self._writing():
            (alert,) = self._open_alerts([alert_id], "suppress")
            self._conn.execute(
                "UPDATE alerts SET suppressed_until = ?, suppressed_by = ?, suppress_reason = ? WHERE id = ?",
                (until, actor, reason, alert_id),
            )
            data = {"until": until, "reason": reason}
            events.append(self._human(alert, EventKind.SUPPRESSED, actor, now, reason, data))
            return self._publish(events, now)

    def unsuppress(self, alert_id: int, actor: str, now: int) -> list[AlertEvent]:
        """End a suppression early. An alert not suppressed is left as it was (no event)."""
        actor = validate_actor(actor)
        events: list[_Event] = []
        with self._lock, self._writing():
            alert = self._existing([alert_id])[alert_id]
            if alert.suppressed_until is not None and alert.suppressed_until > now:
                self._conn.execute(
                    "UPDATE alerts SET suppressed_until = NULL, suppressed_by = NULL, "
                    "suppress_reason = NULL WHERE id = ?",
                    (alert_id,),
                )
                events.append(self._human(alert, EventKind.UNSUPPRESSED, actor, now, "lifted by hand", None))
            return self._publish(events, now)

    def resolve(self, alert_id: int, actor: str, now: int, note: str = "") -> list[AlertEvent]:
        """Close an open alert by hand. The pair enters its cooldown as after an automatic resolve, so
        a condition that is in fact still there reopens this alert once it meets its debounce."""
        actor, note = validate_actor(actor), validate_text(note, "note")
        events: list[_Event] = []
        with self._lock, self._writing():
            (alert,) = self._open_alerts([alert_id], "resolve")
            self._conn.execute(
                "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?",
                (now, actor, alert_id),
            )
            events.append(self._human(alert, EventKind.RESOLVED, actor, now, note, _note(note)))
            cycle = Cycle()
            key = (alert.miner_id, alert.rule_id)
            self._tracker.resolved_by_hand(key, alert.id, alert.severity, cycle, now)
            write_tracks(self._conn, cycle)
            return self._publish(events, now)

    # --- reads (the API's and the notifier's) ----------------------------------------------------------

    def list_alerts(
        self,
        *,
        now: int,
        state: queries.StateFilter = queries.StateFilter.OPEN,
        severities: Collection[Severity] = (),
        miner_id: str | None = None,
        rule_id: str | None = None,
        limit: int = queries.DEFAULT_LIMIT,
    ) -> list[Alert]:
        with self._lock:
            return queries.list_alerts(
                self._conn, now=now, state=state, severities=severities, miner_id=miner_id, rule_id=rule_id,
                limit=limit,
            )  # fmt: skip

    def get(self, alert_id: int) -> Alert | None:
        with self._lock:
            return queries.get_alerts(self._conn, [alert_id]).get(alert_id)

    def history(self, alert_id: int) -> list[HistoryEntry]:
        with self._lock:
            return queries.history(self._conn, alert_id)

    def is_suppressed(self, alert_id: int, now: int) -> bool:
        """For the notifier, at send time: is this alert's suppression still in force?"""
        with self._lock:
            return bool(queries.suppressed_ids(self._conn, now, [alert_id]))

    def suppressed_alert_ids(self, now: int) -> set[int]:
        with self._lock:
            return queries.suppressed_ids(self._conn, now)

    # --- helpers ---------------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One IMMEDIATE transaction; if it fails, the track cache is reloaded from what is committed,
        so memory never runs ahead of the database."""
        try:
            with _transaction(self._conn):
                yield
        except BaseException:
            self._tracker.tracks = load_tracks(self._conn)
            raise

    def _existing(self, ids: list[int]) -> dict[int, Alert]:
        found = queries.get_alerts(self._conn, ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise AlertNotFound(f"no alert {missing[0]}")
        return found

    def _open_alerts(self, ids: list[int], action: str) -> list[Alert]:
        found = self._existing(ids)
        closed = [i for i in ids if not found[i].open]
        if closed:
            raise AlertConflict(f"cannot {action} alert {closed[0]}: it is resolved")
        return [found[i] for i in ids]

    def _human(
        self, alert: Alert, kind: EventKind, actor: str, now: int, detail: str, data: dict[str, Any] | None
    ) -> _Event:
        details = {"alert_id": alert.id, "miner_id": alert.miner_id, "rule_id": alert.rule_id, **(data or {})}
        audit.record(self._conn, actor, f"alert.{kind.value}", f"alert:{alert.id}", details, now)
        key = (alert.miner_id, alert.rule_id)
        return _event(kind, alert.id, key, alert.severity, now, detail, actor), data

    def _write_events(self, events: list[_Event]) -> None:
        self._conn.executemany(
            "INSERT INTO alert_events (alert_id, kind, ts, actor, detail, data) VALUES (?, ?, ?, ?, ?, ?)",
            [(e.alert_id, e.kind.value, e.ts, e.actor, e.detail, None if d is None else json.dumps(d))
             for e, d in events],
        )  # fmt: skip

    def _publish(self, events: list[_Event], now: int) -> list[AlertEvent]:
        """Inside the transaction: write the history rows, mark events of suppressed alerts, enqueue
        the notifications."""
        self._write_events(events)
        if not events:
            return []
        silenced = queries.suppressed_ids(self._conn, now, {e.alert_id for e, _ in events})
        out = [replace(e, suppressed=True) if e.alert_id in silenced else e for e, _ in events]
        if self._enqueue is not None:
            self._enqueue(self._conn, out, now)
        return out


def _event(
    kind: EventKind,
    alert_id: int,
    key: Key,
    severity: Severity,
    now: int,
    detail: str,
    actor: str = SYSTEM_ACTOR,
) -> AlertEvent:
    return AlertEvent(
        kind=kind, alert_id=alert_id, miner_id=key[0], rule_id=key[1], severity=severity, ts=now,
        detail=detail, actor=actor,
    )  # fmt: skip


def _finding_event(kind: EventKind, track: Track, finding: Finding, first_seen: int, now: int) -> _Event:
    assert track.alert_id is not None
    key = (track.miner_id, track.rule_id)
    data = {"value": finding.value, "threshold": finding.threshold, "first_seen_at": first_seen}
    return _event(kind, track.alert_id, key, finding.severity, now, finding.detail), data


def _note(note: str) -> dict[str, Any] | None:
    return {"note": note} if note else None
