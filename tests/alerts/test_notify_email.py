"""Email against a real local SMTP server (aiosmtpd, in its own thread): plain SMTP, STARTTLS with a
certificate made at test time and a login, and a server that does not offer the STARTTLS we require
(the message waits, it is neither sent in clear nor dropped)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from gateway.alerts.notify import Notifier
from gateway.alerts.notify_config import NotificationSettings
from gateway.store.state import open_state
from tests.alerts.notify_support import MailSink, event, self_signed_cert, smtp_server, until


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_state(tmp_path / "state.db")
    yield connection
    connection.close()


@contextlib.contextmanager
def serving(controller: Controller) -> Iterator[Controller]:
    try:
        yield controller
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def email_settings(controller: Controller, **extra: Any) -> NotificationSettings:
    channel = {
        "type": "email", "host": "127.0.0.1", "port": controller.port, "from": "gateway@site.test",
        "to": ["noc@site.test", "tech@site.test"], "timeout_s": 5, "retry": {"initial_s": 0.1, "max_s": 0.3},
        **extra,
    }  # fmt: skip
    return NotificationSettings.model_validate(
        {"channels": {"mail": channel}, "routes": [{"channel": "mail"}], "poll_s": 0.05}
    )


async def test_plain_smtp_delivers_a_plain_text_message(conn: sqlite3.Connection) -> None:
    sink = MailSink()
    with serving(smtp_server(sink)) as controller:
        notifier = Notifier(email_settings(controller, starttls="auto"), conn, site_id="site-1")
        notifier.enqueue(conn, [event(1, customer_id="acme"), event(2, kind="resolved")], time.time())
        async with running(notifier):
            await until(lambda: len(sink.received) == 2, "two emails")
            await asyncio.sleep(0.2)
    assert len(sink.received) == 2
    first = sink.received[0]
    assert first.mail_from == "gateway@site.test" and first.rcpt_tos == ["noc@site.test", "tech@site.test"]
    assert not first.tls and first.login is None
    assert first.message["Subject"] == "[P1] hashrate_zero opened on miner-1 (site-1)"
    assert first.message.get_content_type() == "text/plain"
    payload = first.message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    assert "Miner:    miner-1" in body and "Customer: acme" in body and "0 TH/s for 3 samples" in body
    assert sink.received[1].message["Subject"].startswith("[P1] hashrate_zero resolved on miner-2")
    # A stable Message-ID per notification, so a mail client can drop a retried duplicate.
    assert first.message["Message-ID"] != sink.received[1].message["Message-ID"]
    assert first.message["X-HashInsight-Key"] == "site-1:alert:1:opened:1700000001:mail"


async def test_starttls_and_login_against_a_server_that_requires_both(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    """The server refuses mail and AUTH before STARTTLS; its certificate is self-signed, made now, and
    trusted through ca_file (certificate and host name are verified, not skipped)."""
    cert = self_signed_cert(tmp_path)
    sink = MailSink()
    with serving(smtp_server(sink, cert=cert, users={"gateway": "s3cret-pass"})) as controller:
        config = email_settings(
            controller, starttls="required", ca_file=str(cert[0]), username="gateway", password="s3cret-pass"
        )
        notifier = Notifier(config, conn, site_id="site-1")
        notifier.enqueue(conn, [event(7)], time.time())
        async with running(notifier):
            await until(lambda: len(sink.received) == 1, "an email over TLS")
    received = sink.received[0]
    assert received.tls and received.login == "gateway"
    assert "miner-7" in received.message["Subject"]


async def test_a_wrong_password_or_untrusted_certificate_keeps_the_message_queued(
    tmp_path: Path, conn: sqlite3.Connection
) -> None:
    cert = self_signed_cert(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    untrusted = self_signed_cert(other)[0]
    sink = MailSink()
    with serving(smtp_server(sink, cert=cert, users={"gateway": "s3cret-pass"})) as controller:
        for extra, error in [
            ({"ca_file": str(cert[0]), "password": "wrong"}, "SMTPAuthenticationError"),
            ({"ca_file": str(untrusted), "password": "s3cret-pass"}, "CERTIFICATE_VERIFY_FAILED"),
        ]:
            conn.execute("DELETE FROM notification_outbox")
            conn.execute("DELETE FROM notification_messages")
            config = email_settings(controller, starttls="required", username="gateway", **extra)
            notifier = Notifier(config, conn, site_id="site-1")
            notifier.enqueue(conn, [event(1)], time.time())

            def failed_twice(n: Notifier = notifier) -> bool:
                return n.stats()[0].failed_attempts >= 2

            async with running(notifier):
                await until(failed_twice, f"failures ({error})")
            stats = notifier.stats()[0]
            assert stats.pending == 1 and error in (stats.last_error or "")
    assert sink.received == []


async def test_required_starttls_that_the_server_does_not_offer_sends_nothing(
    conn: sqlite3.Connection,
) -> None:
    sink = MailSink()
    with serving(smtp_server(sink)) as controller:  # no TLS on offer (a stripped or misconfigured relay)
        notifier = Notifier(email_settings(controller, starttls="required"), conn, site_id="site-1")
        notifier.enqueue(conn, [event(1)], time.time())
        async with running(notifier):
            await until(lambda: notifier.stats()[0].failed_attempts >= 2, "refused attempts")
    assert sink.received == []
    stats = notifier.stats()[0]
    assert stats.pending == 1 and "does not offer STARTTLS" in (stats.last_error or "")
