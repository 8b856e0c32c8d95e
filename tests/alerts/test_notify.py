"""The notifier against real local receivers (aiohttp servers) over loopback TCP, on a real state.db.

Timing: backoffs and timeouts are set small (tenths of a second) so the tests run in seconds. The few
timing assertions are bounds derived from the configured timeouts, with wide margins, and say what
they would mean if violated: a healthy channel that waited behind a hanging one would need at least
that channel's `timeout_s`; an event loop blocked by a send would lag by about as much.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.alerts.notify import Notifier
from gateway.alerts.notify_config import NotificationSettings
from gateway.clock import FakeClock
from gateway.store.state import open_state
from tests.alerts.notify_support import (
    T0,
    TelegramFake,
    WebhookReceiver,
    event,
    free_port,
    silent_server,
    until,
)

SECRET = "webhook-shared-secret"
FAST_RETRY = {"initial_s": 0.1, "max_s": 0.3}


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": SECRET, "timeout_s": 0.5, "retry": FAST_RETRY, **extra}


def settings(channels: dict[str, Any], **extra: Any) -> NotificationSettings:
    routes = [{"channel": name} for name in channels]
    return NotificationSettings.model_validate(
        {"channels": channels, "routes": routes, "poll_s": 0.05, **extra}
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def conn(db: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(db)
    yield connection
    connection.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET.encode())
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def delivery_rows(conn: sqlite3.Connection, channel: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM notification_outbox WHERE channel = ? ORDER BY message_id, target", (channel,)
    ).fetchall()


async def test_a_webhook_is_signed_and_delivered_once_in_order(
    conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    await receiver.start()
    notifier = Notifier(settings({"ops": webhook(receiver.url)}), conn, site_id="site-1")
    notifier.enqueue(conn, [event(i) for i in range(1, 6)], time.time())
    async with running(notifier):
        await until(lambda: len(receiver.accepted) == 5, "five webhooks accepted")
        await asyncio.sleep(0.3)  # several poll intervals: nothing is sent again
    assert receiver.accepted_ids == [1, 2, 3, 4, 5]
    assert all(attempt.signed_ok for attempt in receiver.attempts) and len(receiver.attempts) == 5
    first = receiver.accepted[0]
    assert first["site_id"] == "site-1" and first["severity"] == "P1" and first["rule_id"] == "hashrate_zero"
    assert receiver.attempts[0].key == "site-1:alert:1:opened:1700000001:ops"
    assert all(row["status"] == "delivered" and row["attempts"] == 1 for row in delivery_rows(conn, "ops"))


async def test_a_receiver_down_then_failing_then_hanging_gets_everything_exactly_once(
    db: Path, conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    """Connection refused, then HTTP 500, then no reply at all, then a notifier restart while in
    backoff, then the receiver works: each message is accepted exactly once, in order, and every
    attempt of a message carried the same body and idempotency key under a valid signature."""
    config = settings({"ops": webhook(receiver.url)})
    notifier = Notifier(config, conn, site_id="site-1")
    notifier.enqueue(conn, [event(i) for i in range(1, 6)], time.time())

    def first_attempts() -> int:
        return int(delivery_rows(conn, "ops")[0]["attempts"])

    async with running(notifier):
        await until(lambda: first_attempts() >= 3, "three refused attempts")  # nothing listens yet
        assert "Connect" in str(delivery_rows(conn, "ops")[0]["last_error"])
        receiver.mode = "error"
        await receiver.start()
        await until(lambda: receiver.count("error") >= 2, "two 500 replies")
        receiver.mode = "hang"
        await until(lambda: receiver.count("hang") >= 2, "a hung attempt timed out and was retried")
        assert "no reply within" in str(delivery_rows(conn, "ops")[0]["last_error"]) or "Timeout" in str(
            delivery_rows(conn, "ops")[0]["last_error"]
        )
    assert receiver.accepted == [] and first_attempts() >= 6  # the last hung attempt was cut by the stop
    assert [row["status"] for row in delivery_rows(conn, "ops")] == ["pending"] * 5  # nothing dropped

    receiver.mode = "ok"
    restarted_conn = open_state(db)  # a new process: new connection, new notifier, same file
    try:
        restarted = Notifier(config, restarted_conn, site_id="site-1")
        async with running(restarted):
            await until(lambda: len(receiver.accepted) == 5, "the backlog delivered")
            await asyncio.sleep(0.3)
        assert receiver.accepted_ids == [1, 2, 3, 4, 5]
        stats = {s.channel: s for s in restarted.stats()}["ops"]
        assert stats.pending == 0 and stats.delivered == 5
    finally:
        restarted_conn.close()
    by_key: dict[str, set[bytes]] = {}
    for attempt in receiver.attempts:
        assert attempt.signed_ok
        by_key.setdefault(attempt.key, set()).add(attempt.body)
    assert len(by_key) == 5 and all(len(bodies) == 1 for bodies in by_key.values())
    accepted_keys = [a.key for a in receiver.attempts if a.mode == "ok"]
    assert len(accepted_keys) == len(set(accepted_keys)) == 5


async def test_a_restart_mid_backoff_keeps_the_backoff_and_delivers_once(
    db: Path, conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    config = settings({"ops": webhook(receiver.url, retry={"initial_s": 1.0, "max_s": 5.0})})
    receiver.mode = "error"
    await receiver.start()
    notifier = Notifier(config, conn, site_id="site-1")
    notifier.enqueue(conn, [event(1), event(2)], time.time())
    async with running(notifier):
        await until(lambda: receiver.count("error") == 1, "the first attempt failed")
        await until(lambda: delivery_rows(conn, "ops")[0]["attempts"] == 1, "the failure recorded")
    retry_at = delivery_rows(conn, "ops")[0]["next_attempt_at"]
    assert retry_at > time.time()  # stopped while in backoff

    receiver.mode = "ok"
    second = open_state(db)
    try:
        async with running(Notifier(config, second, site_id="site-1")):
            await until(lambda: len(receiver.accepted) == 2, "both delivered after the restart")
            await asyncio.sleep(0.3)
    finally:
        second.close()
    assert receiver.accepted_ids == [1, 2]
    ok = [a for a in receiver.attempts if a.mode == "ok"]
    assert ok[0].at >= retry_at - 0.05  # the new notifier honoured the persisted next_attempt_at
    assert receiver.count("error") == 1


async def test_a_hanging_endpoint_delays_neither_another_channel_nor_the_event_loop(
    conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    """One webhook and one SMTP server accept connections and never answer (timeout 3 s each); a
    healthy webhook must get all ten messages well before the hanging channels' first timeout, and a
    'poller' ticking every 20 ms on the same loop must never be late by a sizeable part of it."""
    hang_timeout_s = 3.0
    silent = await silent_server()
    port = silent.sockets[0].getsockname()[1]
    await receiver.start()
    channels = {
        "stuck_hook": webhook(f"http://127.0.0.1:{port}/hook", timeout_s=hang_timeout_s),
        "stuck_mail": {
            "type": "email", "host": "127.0.0.1", "port": port, "starttls": "off", "from": "gw@site.test",
            "to": ["noc@site.test"], "timeout_s": hang_timeout_s, "retry": FAST_RETRY,
        },
        "healthy": webhook(receiver.url),
    }  # fmt: skip
    notifier = Notifier(settings(channels), conn, site_id="site-1")
    notifier.enqueue(conn, [event(i) for i in range(1, 11)], time.time())
    max_lag = 0.0

    async def poller(stop: asyncio.Event) -> None:
        nonlocal max_lag
        while not stop.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.02)
            max_lag = max(max_lag, time.monotonic() - started - 0.02)

    started = time.monotonic()
    async with running(notifier) as stop:
        probe = asyncio.create_task(poller(stop))
        await until(lambda: len(receiver.accepted) == 10, "the healthy channel delivered everything")
        healthy_done_s = time.monotonic() - started
        stuck = {s.channel: s for s in notifier.stats()}
        await until(lambda: time.monotonic() - started > 1.0, "a second of hanging")
    await probe
    silent.close()
    await silent.wait_closed()
    assert healthy_done_s < hang_timeout_s, f"healthy channel took {healthy_done_s:.2f} s"
    assert max_lag < hang_timeout_s / 4, f"event loop blocked for {max_lag:.2f} s"
    assert stuck["stuck_hook"].delivered == 0 and stuck["stuck_hook"].pending == 10
    assert stuck["stuck_mail"].delivered == 0 and stuck["stuck_mail"].pending == 10


async def test_budget_digest_is_delivered_when_the_window_ends(
    conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    clock = FakeClock(time.time())
    receiver.clock = clock.now  # the receiver's replay window follows the same (fake) time
    await receiver.start()
    config = settings({"ops": webhook(receiver.url, budget={"max_messages": 3, "window_s": 600})})
    notifier = Notifier(config, conn, site_id="site-1", clock=clock)
    notifier.enqueue(conn, [event(i) for i in range(1, 7)], clock.now())
    async with running(notifier):
        await until(lambda: len(receiver.accepted) == 3, "the budget's three messages")
        await asyncio.sleep(0.2)
        assert len(receiver.accepted) == 3 and notifier.stats()[0].folded_waiting == 3
        clock.advance(600)
        await until(lambda: len(receiver.accepted) == 4, "the digest at the end of the window")
        notifier.enqueue(conn, [event(7)], clock.now())
        await until(lambda: len(receiver.accepted) == 5, "a message in the next window")
    assert receiver.accepted_ids == [1, 2, 3, "digest", 7]
    digest = receiver.accepted[3]
    assert [item["alert_id"] for item in digest["items"]] == [4, 5, 6] and digest["count"] == 3


async def test_an_alert_suppressed_while_queued_is_not_sent(
    conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    suppressed: set[int] = set()
    notifier = Notifier(
        settings({"ops": webhook(receiver.url)}), conn, site_id="site-1",
        is_suppressed=lambda alert_id, now: alert_id in suppressed,
    )  # fmt: skip
    notifier.enqueue(conn, [event(1), event(2), event(3)], time.time())
    suppressed.add(2)  # a person suppressed alert 2 while the receiver was unreachable
    await receiver.start()
    async with running(notifier):
        await until(lambda: len(receiver.accepted) == 2, "the two unsuppressed alerts")
        await asyncio.sleep(0.2)
    assert receiver.accepted_ids == [1, 3]
    assert [row["status"] for row in delivery_rows(conn, "ops")] == ["delivered", "suppressed", "delivered"]


async def test_a_channel_that_keeps_failing_is_reported_and_keeps_its_messages(
    conn: sqlite3.Connection,
) -> None:
    clock = FakeClock(T0)
    url = f"http://127.0.0.1:{free_port()}/hook"
    config = settings({"ops": webhook(url, retry={"initial_s": 0.01, "max_s": 0.01})}, alarm_after_s=60)
    notifier = Notifier(config, conn, site_id="site-1", clock=clock)
    notifier.enqueue(conn, [event(1)], clock.now())
    async with running(notifier):
        await until(lambda: notifier.stats()[0].failed_attempts >= 1, "an attempt failed")
        assert not notifier.stats()[0].failing
        clock.advance(61)
        await until(lambda: notifier.stats()[0].failing, "the channel reported failing")
    stats = notifier.stats()[0]
    assert stats.pending == 1 and stats.oldest_pending_age_s == pytest.approx(61)
    assert "Connect" in (stats.last_error or "")
    metrics = notifier.prometheus()
    assert 'hashinsight_notify_failing{channel="ops"} 1' in metrics
    assert 'hashinsight_notify_pending{channel="ops"} 1' in metrics


async def test_telegram_sends_to_every_chat_once_and_honours_retry_after(conn: sqlite3.Connection) -> None:
    bot = TelegramFake(token="123456:test-token", rate_limit=1, retry_after=1)
    await bot.start()
    try:
        channel = {
            "type": "telegram", "token": bot.token, "chat_ids": [-1001, "@site_alerts"],
            "base_url": bot.base_url, "timeout_s": 2, "retry": {"initial_s": 0.05, "max_s": 2},
        }  # fmt: skip
        notifier = Notifier(settings({"techs": channel}), conn, site_id="site-1")
        notifier.enqueue(conn, [event(1), event(2, kind="resolved")], time.time())
        started = time.monotonic()
        async with running(notifier):
            await until(lambda: len(bot.sent) == 4, "two messages to two chats")
            await asyncio.sleep(0.2)
        # The 429 asked for 1 s; the 0.05 s backoff alone would have retried much sooner.
        assert time.monotonic() - started >= 1.0
    finally:
        await bot.stop()
    assert [chat for chat, _ in bot.sent] == ["-1001", "@site_alerts", "-1001", "@site_alerts"]
    assert "hashrate_zero opened on miner-1" in bot.sent[0][1]
    assert "hashrate_zero resolved on miner-2" in bot.sent[2][1]
    assert bot.requests == 5  # one 429, then each (message, chat) exactly once


async def test_telegram_errors_never_reveal_the_bot_token(conn: sqlite3.Connection) -> None:
    token = "987654:very-secret-token"
    channel = {
        "type": "telegram", "token": token, "chat_ids": [1], "timeout_s": 0.5,
        "base_url": f"http://127.0.0.1:{free_port()}", "retry": FAST_RETRY,
    }  # fmt: skip
    notifier = Notifier(settings({"techs": channel}), conn, site_id="site-1")
    notifier.enqueue(conn, [event(1)], time.time())
    async with running(notifier):
        await until(lambda: notifier.stats()[0].failed_attempts >= 2, "failed attempts")
    errors = [str(row["last_error"]) for row in delivery_rows(conn, "techs")]
    assert errors[0] and all(token not in error for error in errors)
    assert token not in str(notifier.stats()) and token not in notifier.prometheus()


async def test_the_webhook_body_is_the_stored_payload(
    conn: sqlite3.Connection, receiver: WebhookReceiver
) -> None:
    """Byte-identical resends need the body to be exactly what was stored at enqueue."""
    await receiver.start()
    notifier = Notifier(settings({"ops": webhook(receiver.url)}), conn, site_id="site-1")
    notifier.enqueue(conn, [event(1, customer_id="acme")], time.time())
    async with running(notifier):
        await until(lambda: len(receiver.accepted) == 1, "delivered")
    stored = conn.execute("SELECT payload FROM notification_messages").fetchone()[0]
    assert receiver.attempts[0].body == stored.encode()
    assert json.loads(stored)["customer_id"] == "acme"
