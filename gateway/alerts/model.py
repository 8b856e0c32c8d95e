"""The alert lifecycle's vocabulary: the per-rule policy it needs, the events it emits, the alert rows
it serves, and its errors. Kept apart from lifecycle.py so the notifier, the API and the rules catalog
can import these without pulling in the state machine."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.rules.findings import Severity

SYSTEM_ACTOR = "system"
MAX_ACTOR_LEN = 64
MAX_TEXT_LEN = 500


class AlertPolicy(Protocol):
    """What the lifecycle needs to know about a rule. The catalog's frozen rule dataclasses satisfy it
    structurally (same attribute names); `Policy` is the plain implementation.

    Opening needs BOTH `debounce_samples` consecutive firing findings AND `debounce_s` seconds of
    firing (first to latest sample time); 1 and 0 switch a criterion off. Resolving needs the
    condition clear for `clear_window_s` seconds (0: the first clear finding resolves). A firing run
    that meets the debounce within `cooldown_s` of resolution reopens the same alert."""

    @property
    def severity(self) -> Severity: ...
    @property
    def debounce_samples(self) -> int: ...
    @property
    def debounce_s(self) -> float: ...
    @property
    def clear_window_s(self) -> float: ...
    @property
    def cooldown_s(self) -> float: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    severity: Severity = Severity.P2
    debounce_samples: int = 2
    debounce_s: float = 0.0
    clear_window_s: float = 120.0
    cooldown_s: float = 900.0

    def __post_init__(self) -> None:
        if self.debounce_samples < 1:
            raise ValueError("debounce_samples must be >= 1 (1: the first firing finding suffices)")
        for name in ("debounce_s", "clear_window_s", "cooldown_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


# For findings whose rule the lookup does not know: conservative (two samples), never silent.
DEFAULT_POLICY = Policy()


class EventKind(enum.StrEnum):
    OPENED = "opened"
    ACKED = "acked"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    RESOLVED = "resolved"
    REOPENED = "reopened"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One transition, handed to the notifier after it is committed. `suppressed` is the alert's
    suppression at `ts`; the notifier should check `AlertLifecycle.is_suppressed` again at send time,
    since a queued message may outlive the moment."""

    kind: EventKind
    alert_id: int
    miner_id: str
    rule_id: str
    severity: Severity
    ts: int
    detail: str = ""
    actor: str = SYSTEM_ACTOR
    suppressed: bool = False


class AlertState(enum.StrEnum):
    """What a person sees: stored state ('open'/'resolved') refined by ack and suppression at `now`."""

    OPEN = "open"
    ACKED = "acked"
    SUPPRESSED = "suppressed"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    id: int
    miner_id: str
    rule_id: str
    severity: Severity
    open: bool
    first_seen_at: int
    opened_at: int
    reopened_at: int | None
    reopen_count: int
    resolved_at: int | None
    resolved_by: str | None
    acked_at: int | None
    acked_by: str | None
    suppressed_until: int | None
    suppressed_by: str | None
    suppress_reason: str | None
    last_value: float | None
    threshold: float | None
    detail: str

    def state(self, now: int) -> AlertState:
        if not self.open:
            return AlertState.RESOLVED
        if self.suppressed_until is not None and self.suppressed_until > now:
            return AlertState.SUPPRESSED
        return AlertState.ACKED if self.acked_at is not None else AlertState.OPEN

    def to_dict(self, now: int) -> dict[str, Any]:
        """The API's JSON shape (`rule`, severity as "P1")."""
        suppressed = self.suppressed_until is not None and self.suppressed_until > now
        return {
            "id": self.id,
            "miner_id": self.miner_id,
            "rule": self.rule_id,
            "severity": self.severity.label,
            "state": self.state(now).value,
            "opened_at": self.opened_at,
            "first_seen_at": self.first_seen_at,
            "reopened_at": self.reopened_at,
            "reopen_count": self.reopen_count,
            "acked_at": self.acked_at,
            "acked_by": self.acked_by,
            "suppressed_until": self.suppressed_until if suppressed else None,
            "suppressed_by": self.suppressed_by if suppressed else None,
            "suppress_reason": self.suppress_reason if suppressed else None,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "detail": self.detail,
            "last_value": self.last_value,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    kind: EventKind
    ts: int
    actor: str
    detail: str
    data: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "ts": self.ts,
            "actor": self.actor,
            "detail": self.detail,
            "data": self.data,
        }


class AlertError(ValueError):
    """A human action that cannot be done; the message says why."""


class AlertNotFound(AlertError):
    """No alert with that id (the API's 404)."""


class AlertConflict(AlertError):
    """The alert exists but is not in a state the action applies to (e.g. acking a resolved alert)."""


def validate_actor(actor: object) -> str:
    """A person's name for the history and the audit log: required, printable, short; never 'system',
    which marks what the gateway did by itself."""
    actor = actor.strip() if isinstance(actor, str) else ""
    if not actor or actor == SYSTEM_ACTOR:
        raise AlertError("actor is required: who is doing this (not 'system')")
    if len(actor) > MAX_ACTOR_LEN or not actor.isprintable():
        raise AlertError(f"actor must be printable and at most {MAX_ACTOR_LEN} characters")
    return actor


def validate_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise AlertError(f"{name} must be a string")
    value = value.strip()
    if len(value) > MAX_TEXT_LEN:
        raise AlertError(f"{name} must be at most {MAX_TEXT_LEN} characters")
    return value
