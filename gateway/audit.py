"""The audit log: who did what to which thing, when — hash-chained so an edit is detectable.

Each entry's hash is sha256 over the canonical JSON of the entry *including the previous entry's
hash*, so changing, inserting or deleting any entry breaks every hash after it (ARCHITECTURE §8).
`record` runs inside the caller's transaction: the business change (an alert acked) and its audit
entry commit together or not at all, and the one-writer rule for state.db keeps the chain linear.

The chain cannot, by itself, show that its newest entries were cut off; that is what the daily head
(`daily_head`) is for: it goes into the signed daily Merkle root, which leaves the site.

Canonical JSON here is RFC 8785 (JCS) for the values the audit log carries (objects, arrays,
strings, booleans, null, integers up to 2^53 and finite floats, keys sorted by UTF-16 code units,
numbers in ECMAScript form), so a verifier elsewhere (the cloud, with the `rfc8785` package) computes
the same bytes. When `shared/canonical.py` lands, this module should call it; the test vectors in
tests/alerts/test_audit.py pin the bytes so the switch cannot silently change a hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64
MAX_SAFE_INTEGER = 2**53


class AuditError(RuntimeError):
    """The audit log was used outside a transaction or with values it cannot hash canonically."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    seq: int
    ts: int
    actor: str
    action: str
    target: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditHead:
    """The chain's newest entry at some moment: its hash commits to every entry before it."""

    seq: int
    ts: int
    hash: str


# --- canonical JSON (RFC 8785) ------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """RFC 8785 serialisation of a JSON value. Raises AuditError for anything JSON cannot carry
    exactly (NaN, infinities, integers beyond 2^53, non-string keys, other types)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) <= MAX_SAFE_INTEGER:
            return str(value)
        # JSON numbers are doubles (RFC 8785): a big integer is fine only if a double carries it
        # exactly as written (e.g. 9007199254740994, which a float in the details parses back to).
        try:
            text = _es_number(float(value))
        except OverflowError:
            text = ""
        if text != str(value):
            raise AuditError(f"integer {value} is not exact as a JSON number; carry it as a string")
        return text
    if isinstance(value, float):
        return _es_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(item) for item in value) + "]"
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise AuditError("object keys must be strings")
        keys = sorted(value, key=lambda key: key.encode("utf-16-be"))
        return (
            "{"
            + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{canonical_json(value[k])}" for k in keys)
            + "}"
        )
    raise AuditError(f"cannot put a {type(value).__name__} in the audit log")


def _es_number(value: float) -> str:
    """A float as ECMAScript's Number.prototype.toString writes it (what RFC 8785 requires).
    Python's repr already gives the shortest round-tripping digits; only the layout differs."""
    if not math.isfinite(value):
        raise AuditError(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _es_number(-value)
    _, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k  # value = 0.digits x 10^n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


def entry_hash(
    *, seq: int, ts: int, actor: str, action: str, target: str, details: Mapping[str, Any], prev_hash: str
) -> str:
    body = {
        "seq": seq,
        "ts": ts,
        "actor": actor,
        "action": action,
        "target": target,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


# --- writing ----------------------------------------------------------------------------------------


def record(
    conn: sqlite3.Connection,
    actor: str,
    action: str,
    target: str,
    details: Mapping[str, Any],
    now: int,
) -> AuditEntry:
    """Append one entry, inside the caller's open transaction (BEGIN IMMEDIATE, so no other writer
    can take the same seq). Refuses to run outside a transaction: an audit entry committed without
    its business change (or the reverse) is exactly what the log must never show."""
    if not conn.in_transaction:
        raise AuditError("audit.record must run inside the caller's transaction")
    if not actor:
        raise AuditError("an audit entry needs an actor")
    row = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (1, GENESIS_HASH) if row is None else (row[0] + 1, row[1])
    text = canonical_json(dict(details))
    digest = entry_hash(
        seq=seq, ts=now, actor=actor, action=action, target=target, details=details, prev_hash=prev_hash
    )
    conn.execute(
        "INSERT INTO audit_log (seq, ts, actor, action, target, details, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, now, actor, action, target, text, prev_hash, digest),
    )
    return AuditEntry(
        seq=seq,
        ts=now,
        actor=actor,
        action=action,
        target=target,
        details=json.loads(text),
        prev_hash=prev_hash,
        hash=digest,
    )


# --- reading and checking ------------------------------------------------------------------------------


def entries(conn: sqlite3.Connection, *, since_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
    sql = (
        "SELECT seq, ts, actor, action, target, details, prev_hash, hash FROM audit_log "
        "WHERE seq > ? ORDER BY seq"
    )
    params: list[int] = [since_seq]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_entry(row) for row in conn.execute(sql, params)]


def _entry(row: sqlite3.Row | tuple[Any, ...]) -> AuditEntry:
    seq, ts, actor, action, target, details, prev_hash, digest = tuple(row)
    return AuditEntry(
        seq=seq,
        ts=ts,
        actor=actor,
        action=action,
        target=target,
        details=json.loads(details),
        prev_hash=prev_hash,
        hash=digest,
    )


def verify(conn: sqlite3.Connection) -> tuple[bool, int | None]:
    """Walk the whole chain: (True, None) if intact, else (False, seq of the first bad entry).

    An entry is bad if its seq is not the next number (one was deleted or inserted), its prev_hash
    is not the previous entry's hash, its details are not JSON, or its hash does not match its
    content. Streams the table, so a long log costs time, not memory."""
    expected_seq, prev_hash = 1, GENESIS_HASH
    cursor = conn.execute(
        "SELECT seq, ts, actor, action, target, details, prev_hash, hash FROM audit_log ORDER BY seq"
    )
    for seq, ts, actor, action, target, details_text, stored_prev, stored_hash in cursor:
        if seq != expected_seq or stored_prev != prev_hash:
            return False, seq
        try:
            details = json.loads(details_text)
            digest = entry_hash(
                seq=seq,
                ts=ts,
                actor=actor,
                action=action,
                target=target,
                details=details,
                prev_hash=prev_hash,
            )
        except (ValueError, TypeError, AuditError):
            return False, seq
        if digest != stored_hash:
            return False, seq
        expected_seq, prev_hash = seq + 1, stored_hash
    return True, None


def head(conn: sqlite3.Connection, *, before_ts: int | None = None) -> AuditHead | None:
    """The chain's newest entry (or the newest written before `before_ts`), None if there is none.

    "Before" is by the entry's recorded time; if the wall clock once stepped back, the entry chosen
    is still the highest seq with an earlier ts, and its hash still commits to every entry before it."""
    if before_ts is None:
        row = conn.execute("SELECT seq, ts, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    else:
        row = conn.execute(
            "SELECT seq, ts, hash FROM audit_log WHERE ts < ? ORDER BY seq DESC LIMIT 1", (before_ts,)
        ).fetchone()
    return None if row is None else AuditHead(seq=row[0], ts=row[1], hash=row[2])


def daily_head(conn: sqlite3.Connection, day: dt.date, tz: dt.tzinfo = dt.UTC) -> AuditHead | None:
    """The chain head at the end of `day` (in `tz`, the site's zone): what the daily Merkle root
    includes so that truncating the log after the fact is detectable off-site."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return head(conn, before_ts=int(end.timestamp()))
