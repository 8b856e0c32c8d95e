"""The hash-chained audit log on a real state.db: the chain, tampering found at the right entry,
records that commit (or roll back) with their business change, the daily head, and the canonical
JSON the hashes are taken over (RFC 8785, pinned by the RFC's own examples)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import audit
from gateway.audit import AuditError, canonical_json
from tests.alerts.lifecycle_support import open_db

DAY1 = int(dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp())


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_db(tmp_path)
    yield db
    db.close()


def write(conn: sqlite3.Connection, n: int, *, start: int = DAY1, step: int = 3600) -> list[audit.AuditEntry]:
    out = []
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        out.append(
            audit.record(
                conn, "alice", "alert.acked", f"alert:{i}", {"i": i, "why": "test"}, start + i * step
            )
        )
        conn.execute("COMMIT")
    return out


def tamper(conn: sqlite3.Connection, sql: str, *params: Any) -> None:
    """What someone with the file and the sqlite3 shell can do: the triggers are no obstacle to them."""
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("DROP TRIGGER audit_log_no_delete")
    conn.execute(sql, params)


# --- the chain --------------------------------------------------------------------------------------------


def test_entries_chain_from_genesis(conn: sqlite3.Connection) -> None:
    entries = write(conn, 5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert audit.entries(conn) == entries
    assert audit.verify(conn) == (True, None)


def test_hash_is_sha256_of_the_canonical_entry(conn: sqlite3.Connection) -> None:
    (entry,) = write(conn, 1)
    body = (
        '{"action":"alert.acked","actor":"alice","details":{"i":0,"why":"test"},'
        f'"prev_hash":"{audit.GENESIS_HASH}","seq":1,"target":"alert:0","ts":{DAY1}}}'
    )
    assert entry.hash == hashlib.sha256(body.encode()).hexdigest()


def test_an_empty_log_verifies(conn: sqlite3.Connection) -> None:
    assert audit.verify(conn) == (True, None)
    assert audit.head(conn) is None


def test_record_refuses_to_run_outside_a_transaction(conn: sqlite3.Connection) -> None:
    with pytest.raises(AuditError, match="inside the caller's transaction"):
        audit.record(conn, "alice", "x", "y", {}, DAY1)


def test_an_entry_rolls_back_with_its_transaction(conn: sqlite3.Connection) -> None:
    write(conn, 2)
    conn.execute("BEGIN IMMEDIATE")
    audit.record(conn, "mallory", "alert.resolved", "alert:9", {}, DAY1)
    conn.execute("ROLLBACK")
    assert [e.actor for e in audit.entries(conn)] == ["alice", "alice"]
    (entry,) = write(conn, 1)
    assert entry.seq == 3 and audit.verify(conn) == (True, None)


def test_the_table_refuses_update_and_delete(conn: sqlite3.Connection) -> None:
    write(conn, 2)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq = 2")


# --- tampering --------------------------------------------------------------------------------------------


def test_an_edited_entry_fails_at_its_seq(conn: sqlite3.Connection) -> None:
    write(conn, 6)
    tamper(conn, "UPDATE audit_log SET details = ? WHERE seq = 3", '{"i":2,"why":"nothing to see"}')
    assert audit.verify(conn) == (False, 3)


@pytest.mark.parametrize("column", ["actor", "action", "target", "ts", "prev_hash"])
def test_any_edited_field_is_found(conn: sqlite3.Connection, column: str) -> None:
    write(conn, 4)
    value = 1 if column == "ts" else "f" * 64 if column == "prev_hash" else "mallory"
    tamper(conn, f"UPDATE audit_log SET {column} = ? WHERE seq = 2", value)
    assert audit.verify(conn) == (False, 2)


def test_a_rehashed_edit_breaks_the_next_link(conn: sqlite3.Connection) -> None:
    write(conn, 5)
    row = conn.execute("SELECT * FROM audit_log WHERE seq = 3").fetchone()
    forged = audit.entry_hash(
        seq=3, ts=row["ts"], actor="mallory", action=row["action"], target=row["target"],
        details={"i": 2, "why": "test"}, prev_hash=row["prev_hash"],
    )  # fmt: skip
    tamper(conn, "UPDATE audit_log SET actor = 'mallory', hash = ? WHERE seq = 3", forged)
    assert audit.verify(conn) == (False, 4)


def test_a_deleted_entry_is_found(conn: sqlite3.Connection) -> None:
    write(conn, 5)
    tamper(conn, "DELETE FROM audit_log WHERE seq = 2")
    assert audit.verify(conn) == (False, 3)


def test_details_that_are_not_json_are_found(conn: sqlite3.Connection) -> None:
    write(conn, 2)
    tamper(conn, "UPDATE audit_log SET details = '{not json' WHERE seq = 1")
    assert audit.verify(conn) == (False, 1)


# --- the daily head ---------------------------------------------------------------------------------------


def test_daily_head_is_the_last_entry_of_the_day(conn: sqlite3.Connection) -> None:
    entries = write(conn, 30, step=3600)  # 30 hours from 2025-03-01 00:00 UTC
    day1, day2 = dt.date(2025, 3, 1), dt.date(2025, 3, 2)
    assert audit.daily_head(conn, dt.date(2025, 2, 28)) is None
    head1 = audit.daily_head(conn, day1)
    assert head1 == audit.AuditHead(seq=24, ts=entries[23].ts, hash=entries[23].hash)
    assert audit.daily_head(conn, day2) == audit.AuditHead(seq=30, ts=entries[29].ts, hash=entries[29].hash)
    assert audit.daily_head(conn, dt.date(2025, 3, 9)) == audit.head(conn)
    # In the site's zone (UTC-6 in March): its 1 March ends at 06:00 UTC on the 2nd.
    chicago = audit.daily_head(conn, day1, tz=dt.timezone(dt.timedelta(hours=-6)))
    assert chicago is not None and chicago.seq == 30


# --- canonical JSON ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "text"),
    [  # RFC 8785 appendix B and section 3.2.2.3
        (0.0, "0"),
        (-0.0, "0"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (295147905179352830000.0, "295147905179352830000"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (333333333.33333329, "333333333.3333333"),
        (1e30, "1e+30"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (1e-27, "1e-27"),
        (-1.5, "-1.5"),
        (91.0, "91"),
        (123456789012345680000.0, "123456789012345680000"),
    ],
)
def test_numbers_are_written_as_ecmascript_does(number: float, text: str) -> None:
    assert canonical_json(number) == text


def test_the_rfc_example_object() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    assert canonical_json(value) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_keys_sort_by_utf16_code_units() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json(dict.fromkeys(keys, 0))
    order = [
        text.index(canonical_json(k))
        for k in ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    ]
    assert order == sorted(order)


def test_a_big_integer_passes_only_if_a_double_carries_it_exactly() -> None:
    assert canonical_json(2**53 + 2) == "9007199254740994"  # what the float 9007199254740994.0 reads back as
    assert canonical_json(295147905179352830000) == "295147905179352830000"


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), 2**53 + 1, 10**400, {1: "x"}, object(), b"bytes"]
)
def test_what_json_cannot_carry_exactly_is_refused(bad: Any) -> None:
    with pytest.raises(AuditError):
        canonical_json(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(details=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_json_details_round_trip_and_verify(
    tmp_path_factory: pytest.TempPathFactory, details: dict[str, Any]
) -> None:
    assert canonical_json(json.loads(canonical_json(details))) == canonical_json(details)
    conn = open_db(tmp_path_factory.mktemp("audit"))
    try:
        conn.execute("BEGIN IMMEDIATE")
        audit.record(conn, "alice", "x", "y", details, DAY1)
        conn.execute("COMMIT")
        assert audit.verify(conn) == (True, None)
    finally:
        conn.close()
