"""Notifications: the alert lifecycle enqueues, a background task delivers.

    notifier = Notifier(settings.notifications, state_conn, site_id=settings.site.id, clock=clock,
                        is_suppressed=lambda alert_id, now: lifecycle.is_suppressed(alert_id, now))
    lifecycle = AlertLifecycle(state_conn, policies, enqueue=notifier.enqueue)  # called in its txn
    tasks.append(asyncio.create_task(notifier.run(stop), name="notifier"))

Why this shape: the queue is durable (state.db, `outbox.py`) and written in the lifecycle's
transaction, so notifications survive restarts and WAN loss and are never lost or invented; delivery
is a task per channel, each strictly in order with its own backoff and hard timeouts, so a receiver
that is down, answers 500 or hangs delays only its own channel — never polling, never another
channel. A delivery is marked done only after the receiver's success reply, and retried (never
dropped) until then; a channel that keeps failing is reported by `stats()` / `prometheus()`.

Exactly once: every delivery row is sent until one attempt gets a success reply, and never after it.
If a receiver processes a request but its reply is lost (it hangs after acting, the link drops), the
next attempt carries the same body and `Idempotency-Key` (the email the same Message-ID), so a
receiver that dedupes on it sees each notification once. Telegram has no such key: a sendMessage
whose reply is lost can show twice.

Threading: everything here runs on the event loop thread and shares the state.db connection with the
lifecycle; each write is one short statement. If the connection is inside someone else's transaction
(a caller awaited mid-transaction), the notifier waits for it rather than joining it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from gateway.alerts import outbox
from gateway.alerts.channels import (
    DeliveryFailed,
    EmailSender,
    Outgoing,
    Sender,
    TelegramSender,
    WebhookSender,
)
from gateway.alerts.notify_config import (
    EmailChannel,
    NotificationSettings,
    Retry,
    TelegramChannel,
    WebhookChannel,
)
from gateway.alerts.outbox import AlertEventLike, IsSuppressed, NotificationEvent, OutboxPolicy
from gateway.clock import Clock, SystemClock

__all__ = ["AlertEventLike", "ChannelStats", "IsSuppressed", "NotificationEvent", "Notifier"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
# Added to a channel's timeout for the outer guard: the sender enforces timeout_s itself; this only
# catches a sender that fails to (a bug must not wedge its channel forever).
_GUARD_S = 5.0
_WRITE_RETRIES = 20


@dataclass(frozen=True, slots=True)
class ChannelStats:
    channel: str
    type: str  # webhook | email | telegram | unconfigured (rows left by a channel since removed)
    pending: int
    delivered: int
    folded_waiting: int
    suppressed: int
    failed_attempts: int  # since this notifier started
    consecutive_failures: int
    oldest_pending_age_s: float | None
    last_error: str | None
    failing: bool  # something has waited longer than alarm_after_s: alert on this


@dataclass
class _ChannelState:
    failed_attempts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    failing: bool = False


def backoff_s(attempts: int, retry: Retry, retry_after: float | None = None) -> float:
    """Delay before the next attempt after `attempts` failed ones: doubling from initial_s up to max_s;
    a receiver's Retry-After is honoured when longer, but never beyond max_s."""
    delay = min(retry.initial_s * 2.0 ** max(0, attempts - 1), retry.max_s)
    if retry_after is not None:
        delay = min(max(delay, retry_after), retry.max_s)
    return delay


class Notifier:
    def __init__(
        self,
        settings: NotificationSettings,
        conn: sqlite3.Connection,
        *,
        site_id: str,
        clock: Clock | None = None,
        is_suppressed: IsSuppressed | None = None,
    ) -> None:
        self.settings = settings
        self.policy = OutboxPolicy.from_settings(settings, site_id)
        self._conn = conn
        self._clock: Clock = clock or SystemClock()
        self._is_suppressed = is_suppressed
        self._wakes = {name: asyncio.Event() for name in settings.channels}
        self._state = {name: _ChannelState() for name in settings.channels}

    # --- the producer side (called by the lifecycle, inside its transaction) ------------------------

    def enqueue(self, conn: sqlite3.Connection, events: Iterable[AlertEventLike], now: float) -> list[int]:
        """Queue notifications for `events` in the caller's open transaction (or in one of its own).
        Returns the new message ids. Cheap: a few short statements per event, no I/O beyond SQLite."""
        if not self.settings.enabled:
            return []
        created = outbox.enqueue(conn, events, int(now), self.policy, self._is_suppressed)
        if created:
            self.wake()
        return created

    def wake(self) -> None:
        """Tell the channel tasks to look at the outbox now (call from the event loop's thread)."""
        for event in self._wakes.values():
            event.set()

    # --- the delivery side ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set. Safe to start on a database with a backlog from an earlier run:
        rows carry their attempts and next_attempt_at, so a restart neither resends what was delivered
        nor retries sooner than the backoff said."""
        if not self.settings.enabled or not self.settings.channels:
            await stop.wait()
            return
        self._warn_about_orphans()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
        senders = self._build_senders(session)
        tasks = [
            asyncio.create_task(self._channel_loop(name, sender, stop), name=f"notify-{name}")
            for name, sender in senders.items()
        ]
        tasks.append(asyncio.create_task(self._windows_loop(stop), name="notify-digests"))
        try:
            await stop.wait()
        finally:
            self.wake()  # sleepers see `stop` at once
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for sender in senders.values():
                await sender.aclose()
            await session.close()

    def _build_senders(self, session: aiohttp.ClientSession) -> dict[str, Sender]:
        senders: dict[str, Sender] = {}
        for name, config in self.settings.channels.items():
            if isinstance(config, WebhookChannel):
                senders[name] = WebhookSender(config, session, self._clock.now)
            elif isinstance(config, TelegramChannel):
                senders[name] = TelegramSender(config, session)
            elif isinstance(config, EmailChannel):
                senders[name] = EmailSender(name, config, self._clock.now)
        return senders

    async def _channel_loop(self, name: str, sender: Sender, stop: asyncio.Event) -> None:
        wake = self._wakes[name]
        while not stop.is_set():
            wake.clear()  # before looking: an enqueue from here on sets it again, so none is missed
            try:
                delivery = await self._db(outbox.next_due, self._conn, name)
                if delivery is None:
                    await self._sleep(wake, self.settings.poll_s)
                    continue
                wait_s = delivery.next_attempt_at - self._clock.now()
                if wait_s > 0:
                    await self._sleep(wake, min(wait_s, self.settings.poll_s))
                    continue
                if delivery.alert_id is not None and self._suppressed(delivery.alert_id):
                    await self._db(outbox.mark_suppressed, self._conn, delivery.id)
                    continue
                await self._attempt(name, sender, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug or a locked database: keep the channel alive, the row stays pending.
                log.exception("notifier channel %s: unexpected error; retrying", name)
                await self._sleep(wake, self.settings.poll_s)

    async def _attempt(self, name: str, sender: Sender, delivery: outbox.Delivery) -> None:
        item = Outgoing(delivery.idem_key, delivery.target, delivery.payload)
        retry_after: float | None = None
        try:
            async with asyncio.timeout(sender.timeout_s + _GUARD_S):
                await sender.send(item)
        except DeliveryFailed as err:
            error, retry_after = str(err), err.retry_after
        except TimeoutError:
            error = f"no reply within {sender.timeout_s:g} s"
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as err:  # a sender bug: the message must still not be lost
            log.exception("notifier channel %s: sender failed unexpectedly", name)
            error = f"{type(err).__name__}: {err}"
        else:
            await self._db(outbox.mark_delivered, self._conn, delivery.id, self._clock.now())
            self._succeeded(name)
            return
        attempts = delivery.attempts + 1
        now = self._clock.now()
        delay = backoff_s(attempts, self.settings.channels[name].retry, retry_after)
        await self._db(outbox.mark_failed, self._conn, delivery.id, now, now + delay, error)
        self._failed(name, delivery, attempts, error, delay)

    def _succeeded(self, name: str) -> None:
        state = self._state[name]
        if state.failing:
            log.warning("notification channel %s delivers again", name)
        state.consecutive_failures, state.failing = 0, False

    def _failed(self, name: str, delivery: outbox.Delivery, attempts: int, error: str, delay: float) -> None:
        state = self._state[name]
        state.failed_attempts += 1
        state.consecutive_failures += 1
        state.last_error = error
        log.info(
            "notification %s via %s: attempt %d failed (%s); next in %.1f s",
            delivery.idem_key, name, attempts, error, delay,
        )  # fmt: skip
        waited = self._clock.now() - self._oldest_pending(name)
        if not state.failing and waited >= self.settings.alarm_after_s:
            state.failing = True
            log.error(
                "notification channel %s is failing: oldest message waiting %.0f s (%s)", name, waited, error
            )

    def _oldest_pending(self, name: str) -> float:
        counts = outbox.channel_counts(self._conn).get(name)
        oldest = counts.oldest_pending_created_at if counts else None
        return self._clock.now() if oldest is None else float(oldest)

    async def _windows_loop(self, stop: asyncio.Event) -> None:
        """Send each digest when its budget window ends (an enqueue after the end does it too)."""
        while not stop.is_set():
            try:
                await self.flush_windows()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier: could not write digests; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.poll_s)

    async def flush_windows(self) -> list[int]:
        """Write the digests of budget windows that have ended; returns their message ids."""
        now = int(self._clock.now())
        due = self._conn.execute(
            "SELECT 1 FROM notification_outbox WHERE status = 'folded' AND digest_id IS NULL "
            "AND window_end <= ? LIMIT 1",
            (now,),
        ).fetchone()
        if due is None:
            return []
        digests = await self._db(self._close_windows, now)
        if digests:
            self.wake()
        return digests

    def _close_windows(self, now: int) -> list[int]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            digests = outbox.close_due_windows(self._conn, now, self.policy, self._is_suppressed)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return digests

    async def _db(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run one short database step on the loop thread, outside anybody else's transaction, with a
        few retries if another connection holds the write lock longer than busy_timeout."""
        for attempt in range(_WRITE_RETRIES):
            while self._conn.in_transaction:  # noqa: ASYNC110 - sqlite3 offers no event to wait on
                await asyncio.sleep(0.01)
            try:
                return fn(*args)
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == _WRITE_RETRIES - 1:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def _sleep(self, wake: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), max(0.0, timeout_s))

    def _suppressed(self, alert_id: int) -> bool:
        return self._is_suppressed is not None and self._is_suppressed(alert_id, int(self._clock.now()))

    def _warn_about_orphans(self) -> None:
        for name, counts in outbox.channel_counts(self._conn).items():
            if name not in self.settings.channels and counts.pending:
                log.warning(
                    "%d notifications wait for channel %r, which is no longer configured; "
                    "they are kept and reported as failing until it is configured again",
                    counts.pending, name,
                )  # fmt: skip

    # --- what operators and the metrics endpoint see ------------------------------------------------

    def stats(self) -> list[ChannelStats]:
        now = self._clock.now()
        counts = outbox.channel_counts(self._conn)
        result = []
        for name in [*self.settings.channels, *sorted(set(counts) - set(self.settings.channels))]:
            c = counts.get(name) or outbox.ChannelCounts(0, None, 0, 0, 0)
            state = self._state.get(name) or _ChannelState()
            config = self.settings.channels.get(name)
            age = None if c.oldest_pending_created_at is None else max(0.0, now - c.oldest_pending_created_at)
            failing = bool(c.pending) and (config is None or (age or 0) >= self.settings.alarm_after_s)
            result.append(
                ChannelStats(
                    channel=name,
                    type=config.type if config is not None else "unconfigured",
                    pending=c.pending,
                    delivered=c.delivered,
                    folded_waiting=c.folded_waiting,
                    suppressed=c.suppressed,
                    failed_attempts=state.failed_attempts,
                    consecutive_failures=state.consecutive_failures,
                    oldest_pending_age_s=age,
                    last_error=state.last_error,
                    failing=failing,
                )
            )
        return result

    def prometheus(self) -> str:
        """Prometheus text lines for the local API's /metrics."""
        lines = []
        metrics: tuple[tuple[str, str, str, Callable[[ChannelStats], float]], ...] = (
            ("pending", "gauge", "Notifications waiting to be delivered.", lambda s: s.pending),
            ("delivered_total", "counter", "Notifications delivered.", lambda s: s.delivered),
            ("folded_waiting", "gauge", "Messages folded into the next digest.", lambda s: s.folded_waiting),
            ("failed_attempts_total", "counter", "Failed delivery attempts.", lambda s: s.failed_attempts),
            ("oldest_pending_age_seconds", "gauge", "Age of the oldest undelivered notification.",
             lambda s: s.oldest_pending_age_s or 0),
            ("failing", "gauge", "1 while a channel keeps failing.", lambda s: int(s.failing)),
        )  # fmt: skip
        stats = self.stats()
        for metric, kind, help_text, value in metrics:
            lines.append(f"# HELP hashinsight_notify_{metric} {help_text}")
            lines.append(f"# TYPE hashinsight_notify_{metric} {kind}")
            lines += [f'hashinsight_notify_{metric}{{channel="{s.channel}"}} {value(s):g}' for s in stats]
        return "\n".join(lines) + "\n"
