"""The durable outbox on a real state.db: routing by severity/site/customer, the per-channel budget and
its digest, and enqueue's place inside the caller's transaction. No network here: what these tests
check is what gets written, which is what will be sent."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts import outbox
from gateway.alerts.notify import Notifier
from gateway.alerts.notify_config import NotificationSettings
from gateway.rules.findings import Severity
from gateway.store.state import open_state
from tests.alerts.notify_support import T0, event


def hook(**extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s", **extra}


ROUTED = NotificationSettings.model_validate(
    {
        "channels": {"ops": hook(), "acme": hook(), "north": hook(), "pager": hook()},
        "routes": [
            {"channel": "ops", "min_severity": "P1"},
            {"channel": "acme", "customers": ["acme"]},
            {"channel": "north", "sites": ["north"], "min_severity": "P2"},
            {"channel": "pager", "min_severity": "P0", "kinds": ["opened", "reopened"]},
        ],
    }
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.db")
    yield connection
    connection.close()


def rows(conn: sqlite3.Connection, channel: str | None = None) -> list[dict[str, Any]]:
    query = (
        "SELECT o.channel, o.status, o.target, o.digest_id, m.kind, m.alert_id, m.payload "
        "FROM notification_outbox o JOIN notification_messages m ON m.id = o.message_id"
    )
    args: tuple[str, ...] = ()
    if channel is not None:
        query, args = query + " WHERE o.channel = ?", (channel,)
    return [dict(row) for row in conn.execute(query + " ORDER BY o.message_id, o.channel", args)]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"severity": Severity.P0}, ["ops", "pager"]),
        ({"severity": Severity.P0, "kind": "resolved"}, ["ops"]),  # the pager route wants openings only
        ({"severity": Severity.P1}, ["ops"]),
        ({"severity": Severity.P2}, []),
        ({"severity": Severity.P3, "customer_id": "acme"}, ["acme"]),
        ({"severity": Severity.P1, "customer_id": "acme"}, ["ops", "acme"]),
        ({"severity": Severity.P1, "customer_id": "globex"}, ["ops"]),
        ({"severity": Severity.P2, "site_id": "north"}, ["north"]),
        ({"severity": Severity.P3, "site_id": "north"}, []),
        ({"severity": Severity.P0, "kind": "acked"}, []),  # human actions are not routed by default
    ],
)
def test_routing_by_severity_site_customer_and_kind(extra: dict[str, Any], expected: list[str]) -> None:
    policy = outbox.OutboxPolicy.from_settings(ROUTED, site_id="south")
    payload = outbox.event_payload(event(1, **extra), "south")
    assert policy.channels_for(payload) == expected


def test_enqueue_writes_one_message_and_a_row_per_routed_channel(conn: sqlite3.Connection) -> None:
    notifier = Notifier(ROUTED, conn, site_id="south")
    ids = notifier.enqueue(conn, [event(1, severity=Severity.P0), event(2, severity=Severity.P3)], T0)
    assert len(ids) == 1  # event 2 is routed nowhere, so nothing is written for it
    assert [(r["channel"], r["status"]) for r in rows(conn)] == [("ops", "pending"), ("pager", "pending")]
    payload = json.loads(rows(conn)[0]["payload"])
    assert payload["severity"] == "P0" and payload["site_id"] == "south" and payload["kind"] == "opened"


def test_the_same_event_twice_is_queued_once(conn: sqlite3.Connection) -> None:
    notifier = Notifier(ROUTED, conn, site_id="south")
    assert notifier.enqueue(conn, [event(1)], T0)
    assert notifier.enqueue(conn, [event(1)], T0 + 5) == []
    assert len(rows(conn)) == 1


def test_enqueue_commits_and_rolls_back_with_the_callers_transaction(conn: sqlite3.Connection) -> None:
    """The alert transition and its notification are one fact: both are written or neither."""
    notifier = Notifier(ROUTED, conn, site_id="south")
    conn.execute("BEGIN IMMEDIATE")
    notifier.enqueue(conn, [event(1)], T0)
    assert conn.in_transaction  # enqueue did not commit the caller's transaction
    conn.execute("ROLLBACK")
    assert rows(conn) == []
    conn.execute("BEGIN IMMEDIATE")
    notifier.enqueue(conn, [event(1)], T0)
    conn.execute("COMMIT")
    assert len(rows(conn)) == 1


def test_suppressed_alerts_are_recorded_but_not_queued_for_sending(conn: sqlite3.Connection) -> None:
    asked: list[tuple[int, int]] = []

    def is_suppressed(alert_id: int, now: int) -> bool:
        asked.append((alert_id, now))
        return alert_id == 2

    notifier = Notifier(ROUTED, conn, site_id="south", is_suppressed=is_suppressed)
    # The lifecycle's own event may already say so (its AlertEvent has `suppressed`).
    notifier.enqueue(conn, [event(1), event(2), event(3, suppressed=True)], T0)
    statuses = [(r["alert_id"], r["status"]) for r in rows(conn)]
    assert statuses == [(1, "pending"), (2, "suppressed"), (3, "suppressed")]
    assert (2, T0) in asked


def budgeted(max_messages: int, window_s: int) -> NotificationSettings:
    budget = {"max_messages": max_messages, "window_s": window_s}
    return NotificationSettings.model_validate(
        {
            "channels": {
                "ops": hook(budget=budget),
                "wide": hook(budget={"max_messages": 100, "window_s": 60}),
            },
            "routes": [{"channel": "ops"}, {"channel": "wide"}],
        }
    )


def test_beyond_the_budget_messages_are_folded_into_one_digest_per_window(conn: sqlite3.Connection) -> None:
    settings = budgeted(3, 600)
    policy = outbox.OutboxPolicy.from_settings(settings, "south")
    outbox.enqueue(conn, [event(i) for i in range(1, 8)], T0, policy)
    ops = rows(conn, "ops")
    assert [r["status"] for r in ops] == ["pending"] * 3 + ["folded"] * 4
    assert all(r["status"] == "pending" for r in rows(conn, "wide"))  # each channel has its own budget

    # Before the window ends nothing is due; at its end one digest lists what was folded, in order.
    assert outbox.close_due_windows(conn, T0 + 599, policy) == []
    conn.execute("BEGIN")
    [digest_id] = outbox.close_due_windows(conn, T0 + 600, policy)
    conn.execute("COMMIT")
    digest = json.loads(
        conn.execute("SELECT payload FROM notification_messages WHERE id = ?", (digest_id,)).fetchone()[0]
    )
    assert digest["type"] == "digest" and digest["channel"] == "ops" and digest["count"] == 4
    assert [item["alert_id"] for item in digest["items"]] == [4, 5, 6, 7]
    assert (digest["window_start"], digest["window_end"]) == (T0, T0 + 600)
    assert {r["digest_id"] for r in rows(conn, "ops") if r["status"] == "folded"} == {digest_id}
    assert outbox.next_due(conn, "ops") is not None
    # The digest is a delivery like any other, queued after the three sent individually.
    pending = [r["kind"] for r in rows(conn, "ops") if r["status"] == "pending"]
    assert pending == ["opened"] * 3 + ["digest"]
    # A window closes once.
    assert outbox.close_due_windows(conn, T0 + 10_000, policy) == []


def test_a_new_window_starts_with_the_first_message_after_the_old_one_ended(conn: sqlite3.Connection) -> None:
    policy = outbox.OutboxPolicy.from_settings(budgeted(2, 60), "south")
    outbox.enqueue(conn, [event(1), event(2), event(3)], T0, policy)
    # An enqueue after the window ended writes the old window's digest first, then opens a new window.
    outbox.enqueue(conn, [event(4), event(5), event(6)], T0 + 61, policy)
    ops = [(r["kind"], r["alert_id"], r["status"]) for r in rows(conn, "ops")]
    assert ops == [
        ("opened", 1, "pending"),
        ("opened", 2, "pending"),
        ("opened", 3, "folded"),
        ("digest", None, "pending"),
        ("opened", 4, "pending"),
        ("opened", 5, "pending"),
        ("opened", 6, "folded"),
    ]


def test_folded_messages_of_an_alert_suppressed_meanwhile_leave_the_digest(conn: sqlite3.Connection) -> None:
    policy = outbox.OutboxPolicy.from_settings(budgeted(1, 60), "south")
    outbox.enqueue(conn, [event(1), event(2), event(3)], T0, policy)
    conn.execute("BEGIN")
    [digest_id] = outbox.close_due_windows(conn, T0 + 60, policy, lambda alert_id, now: alert_id == 2)
    conn.execute("COMMIT")
    digest = json.loads(
        conn.execute("SELECT payload FROM notification_messages WHERE id = ?", (digest_id,)).fetchone()[0]
    )
    assert [item["alert_id"] for item in digest["items"]] == [3]
    assert [(r["alert_id"], r["status"]) for r in rows(conn, "ops") if r["kind"] != "digest"] == [
        (1, "pending"),
        (2, "suppressed"),
        (3, "folded"),
    ]
