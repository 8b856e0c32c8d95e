"""The alert lifecycle's memory and state machine, per (miner, rule); pure Python, no SQL but the
load/store of `alert_tracks` (so it can be reasoned about, and tested, apart from the database).

    idle ──firing──► pending ──debounce met──► firing (alert opened) ──clear──► clearing
      ▲                │ clear: back to idle      ▲  firing: back to firing        │ clear window met
      │                                           │                                ▼
      └──── cooldown over, nothing firing ──── cooldown ◄──────── alert resolved ──┘
                                        (a firing run meeting the debounce here REOPENS the same alert)

Clocks, and findings that are neither firing nor clear: the debounce and the clear window count only
the awaited condition's own findings (firing while pending or cooling down, clear while clearing).
`count` is their number; `held_s` sums the gaps between consecutive ones by *sample time*. A finding
that is `unknown` or `suspended` — or no finding at all for a tracked pair in a cycle — changes no
phase and sets `paused`: it does not reset `count` (the condition was not seen to stop), but the gap
that contains it is not added to `held_s` (the condition was not seen to hold either). So missing data
can delay an open or a resolve, never cause one. A finding whose sample time is not newer than the
last one counted is a duplicate and counts nothing. A cooldown ends at `now` (gateway time).

Only pairs that are not idle have a track, so 10,000 healthy miners cost nothing; a cycle records the
tracks it changed (`Cycle.dirty`, `Cycle.deleted`) and they are written with one `executemany` each.
"""

from __future__ import annotations

import enum
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.alerts.model import AlertPolicy
from gateway.rules.findings import Finding, Severity

Key = tuple[str, str]  # (miner_id, rule_id)


class Phase(enum.StrEnum):
    PENDING = "pending"  # firing seen, debounce not met; no alert yet
    FIRING = "firing"  # alert open, condition holding
    CLEARING = "clearing"  # alert open, condition clear for a while
    COOLDOWN = "cooldown"  # alert resolved; a new firing run within the cooldown reopens it


@dataclass(slots=True, kw_only=True)
class Track:
    miner_id: str
    rule_id: str
    phase: Phase
    alert_id: int | None = None
    count: int = 0  # consecutive findings of the awaited condition in the current run
    held_s: int = 0  # seconds the run has held, gaps containing a pause not counted
    first_ts: int | None = None
    last_ts: int | None = None
    paused: bool = False
    severity: Severity = Severity.P3
    cooldown_until: int | None = None
    # Mirrors of the open alert's row, to write last_value/detail only when they change.
    value: float | None = None
    detail: str = ""

    def observe(self, ts: int) -> bool:
        """Count one finding of the awaited condition at sample time `ts`. False for a duplicate."""
        if self.count == 0:
            self.count, self.held_s, self.first_ts = 1, 0, ts
        elif self.last_ts is not None and ts <= self.last_ts:
            return False
        else:
            if not self.paused and self.last_ts is not None:
                self.held_s += ts - self.last_ts
            self.count += 1
        self.last_ts, self.paused = ts, False
        return True

    def reset_run(self) -> None:
        self.count, self.held_s, self.first_ts, self.last_ts, self.paused = 0, 0, None, None, False

    def row(self) -> tuple[object, ...]:
        return (
            self.miner_id, self.rule_id, self.phase.value, self.alert_id, self.count, self.held_s,
            self.first_ts, self.last_ts, int(self.paused), int(self.severity), self.cooldown_until,
        )  # fmt: skip


@dataclass(slots=True)
class Cycle:
    """What one `apply` (or one manual resolve) changed, to be written in one transaction."""

    dirty: dict[Key, Track] = field(default_factory=dict)
    deleted: set[Key] = field(default_factory=set)
    opens: list[tuple[Track, Finding, int]] = field(default_factory=list)  # track, finding, first seen
    reopens: list[tuple[Track, Finding, int]] = field(default_factory=list)
    resolves: list[tuple[int, Key, Severity, str]] = field(default_factory=list)  # alert id, key, sev, detail
    values: list[tuple[float | None, str, int | None]] = field(
        default_factory=list
    )  # value, detail, alert id

    def touch(self, track: Track) -> None:
        self.dirty[(track.miner_id, track.rule_id)] = track

    @property
    def empty(self) -> bool:
        return not (self.dirty or self.deleted or self.values)


_TRACK_COLUMNS = (
    "miner_id, rule_id, phase, alert_id, count, held_s, first_ts, last_ts, paused, severity, cooldown_until"
)


def load_tracks(conn: sqlite3.Connection) -> dict[Key, Track]:
    rows = conn.execute(
        "SELECT t.miner_id, t.rule_id, t.phase, t.alert_id, t.count, t.held_s, t.first_ts, t.last_ts, "
        "t.paused, t.severity, t.cooldown_until, a.last_value, a.detail "
        "FROM alert_tracks t LEFT JOIN alerts a ON a.id = t.alert_id AND a.state = 'open'"
    )
    tracks: dict[Key, Track] = {}
    for (miner_id, rule_id, phase, alert_id, count, held_s, first_ts, last_ts, paused, severity,
         cooldown_until, value, detail) in rows:  # fmt: skip
        tracks[(miner_id, rule_id)] = Track(
            miner_id=miner_id,
            rule_id=rule_id,
            phase=Phase(phase),
            alert_id=alert_id,
            count=count,
            held_s=held_s,
            first_ts=first_ts,
            last_ts=last_ts,
            paused=bool(paused),
            severity=Severity(severity),
            cooldown_until=cooldown_until,
            value=value,
            detail=detail or "",
        )
    return tracks


def write_tracks(conn: sqlite3.Connection, cycle: Cycle) -> None:
    """Deletes first, then upserts: a pair dropped and re-created in one cycle ends up present."""
    conn.executemany("DELETE FROM alert_tracks WHERE miner_id = ? AND rule_id = ?", sorted(cycle.deleted))
    conn.executemany(
        f"INSERT OR REPLACE INTO alert_tracks ({_TRACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [track.row() for track in cycle.dirty.values()],
    )


class Tracker:
    """The state machine over all tracks. Mutates tracks and records into a `Cycle` what the caller
    must write; the caller commits, then assigns ids to opened alerts (`Cycle.opens`)."""

    def __init__(self, tracks: dict[Key, Track], policy: Callable[[str, str], AlertPolicy]) -> None:
        self.tracks = tracks
        self.policy = policy

    def needing_clear(self) -> set[Key]:
        return {key for key, t in self.tracks.items() if t.phase is not Phase.COOLDOWN or t.count}

    def expire_cooldowns(self, cycle: Cycle, now: int) -> None:
        for key, track in list(self.tracks.items()):
            if (
                track.phase is Phase.COOLDOWN
                and track.cooldown_until is not None
                and track.cooldown_until <= now
            ):
                if track.count:  # a run already debouncing carries on, towards a new alert
                    track.phase, track.alert_id, track.cooldown_until = Phase.PENDING, None, None
                    cycle.touch(track)
                else:
                    self.drop(key, cycle)

    def pause(self, track: Track, cycle: Cycle) -> None:
        if track.count and not track.paused:
            track.paused = True
            cycle.touch(track)

    def pause_missing(self, seen: set[Key], cycle: Cycle) -> None:
        for key, track in self.tracks.items():
            if key not in seen:
                self.pause(track, cycle)

    def firing(self, finding: Finding, cycle: Cycle) -> None:
        key = (finding.miner_id, finding.rule_id)
        track = self.tracks.get(key)
        if track is None:
            track = self.tracks[key] = Track(miner_id=key[0], rule_id=key[1], phase=Phase.PENDING)
        if track.phase in (Phase.FIRING, Phase.CLEARING):
            if track.phase is Phase.CLEARING:  # the clear spell is broken: the window starts over later
                track.phase = Phase.FIRING
                track.reset_run()
                cycle.touch(track)
            if (finding.value, finding.detail) != (track.value, track.detail):
                track.value, track.detail = finding.value, finding.detail
                cycle.values.append((finding.value, finding.detail, track.alert_id))
            return
        if not track.observe(finding.ts):
            return
        track.severity = finding.severity
        cycle.touch(track)
        policy = self.policy(finding.miner_id, finding.rule_id)
        if track.count >= policy.debounce_samples and track.held_s >= policy.debounce_s:
            first_seen = track.first_ts if track.first_ts is not None else finding.ts
            (cycle.opens if track.phase is Phase.PENDING else cycle.reopens).append(
                (track, finding, first_seen)
            )
            track.phase, track.cooldown_until = Phase.FIRING, None
            track.reset_run()
            track.value, track.detail = finding.value, finding.detail

    def clear(self, finding: Finding, cycle: Cycle, now: int) -> None:
        key = (finding.miner_id, finding.rule_id)
        track = self.tracks.get(key)
        if track is None:
            return
        if track.phase is Phase.PENDING:
            self.drop(key, cycle)
            return
        if track.phase is Phase.COOLDOWN:
            if track.count:
                track.reset_run()
                cycle.touch(track)
            return
        if track.phase is Phase.FIRING:
            track.phase = Phase.CLEARING
            track.reset_run()
        if not track.observe(finding.ts):
            return
        cycle.touch(track)
        policy = self.policy(track.miner_id, track.rule_id)
        if track.held_s >= policy.clear_window_s and track.alert_id is not None:
            detail = f"clear for {track.held_s} s over {track.count} finding(s)"
            cycle.resolves.append((track.alert_id, key, track.severity, detail))
            self.enter_cooldown(track, cycle, now)

    def resolved_by_hand(self, key: Key, alert_id: int, severity: Severity, cycle: Cycle, now: int) -> None:
        track = self.tracks.get(key) or Track(miner_id=key[0], rule_id=key[1], phase=Phase.FIRING)
        self.tracks[key] = track
        track.alert_id, track.severity = alert_id, severity
        self.enter_cooldown(track, cycle, now)

    def enter_cooldown(self, track: Track, cycle: Cycle, now: int) -> None:
        cooldown_s = self.policy(track.miner_id, track.rule_id).cooldown_s
        if cooldown_s <= 0:
            self.drop((track.miner_id, track.rule_id), cycle)
            return
        track.phase, track.cooldown_until = Phase.COOLDOWN, now + math.ceil(cooldown_s)
        track.value, track.detail = None, ""  # mirrors only while the alert is open
        track.reset_run()
        cycle.touch(track)

    def drop(self, key: Key, cycle: Cycle) -> None:
        del self.tracks[key]
        cycle.dirty.pop(key, None)
        cycle.deleted.add(key)
