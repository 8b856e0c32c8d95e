"""The three ways a notification leaves the site: webhook, email (SMTP), Telegram.

Each sender makes one attempt and either returns (the receiver said success) or raises
`DeliveryFailed`; retrying, ordering and bookkeeping are the notifier's. Every attempt is bounded by the
channel's `timeout_s` from connect to reply, so a receiver that hangs costs its own channel one
timeout and nothing else.

Webhook signing (for receivers): the signature is HMAC-SHA256 with the shared secret over
`"{timestamp}." + body` — the timestamp is signed with the body, otherwise an attacker could replay an
old body under a fresh timestamp header. A receiver should (1) recompute and compare in constant time,
(2) refuse timestamps more than a few minutes from its clock, (3) dedupe on `Idempotency-Key`: the
gateway retries until it sees a 2xx, so a request whose reply was lost arrives again, byte-identical.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import aiohttp

from gateway.alerts.notify_config import EmailChannel, TelegramChannel, WebhookChannel

SIGNATURE_HEADER = "X-HashInsight-Signature"
TIMESTAMP_HEADER = "X-HashInsight-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "hashinsight-edge-notify/1"
TELEGRAM_MAX_CHARS = 4096
_ERROR_SNIPPET = 200


class DeliveryFailed(Exception):
    """One attempt failed; the delivery stays queued. `retry_after` is the receiver's own hint (HTTP
    Retry-After, Telegram's parameters.retry_after), honoured up to the channel's backoff ceiling."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Outgoing:
    idem_key: str
    target: str  # Telegram chat id; '' otherwise
    payload: str  # canonical JSON, as stored at enqueue


class Sender(Protocol):
    timeout_s: float

    async def send(self, item: Outgoing) -> None: ...

    async def aclose(self) -> None: ...


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, now: float, tolerance_s: float = 300
) -> bool:
    """What a receiver does with a delivery (also used by our tests as the receiver)."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def render_text(payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) for people: email and Telegram."""
    site = payload.get("site_id") or "site"
    if payload.get("type") == "digest":
        items = payload.get("items", [])
        subject = f"[digest] {len(items)} more alert notifications from {site}"
        start, end = payload.get("window_start"), payload["window_end"]
        since = f"between {_when(start)} and {_when(end)}" if start is not None else f"until {_when(end)}"
        lines = [
            f"The message budget of channel {payload.get('channel')} was used up, so these notifications "
            f"from {site} were held back {since}:",
            "",
        ]
        for item in items:
            detail = f": {item['detail']}" if item.get("detail") else ""
            lines.append(
                f"- {_when(item['ts'])}  {item['severity']}  {item['miner_id']}  {item['rule_id']} "
                f"{item['kind']}{detail}"
            )
        return subject, "\n".join(lines) + "\n"
    subject = (
        f"[{payload['severity']}] {payload['rule_id']} {payload['kind']} on {payload['miner_id']} ({site})"
    )
    lines = [
        f"{payload['severity']} {payload['rule_id']}: {payload['kind']}",
        f"Miner:    {payload['miner_id']}",
        f"Site:     {site}",
    ]
    if payload.get("customer_id"):
        lines.append(f"Customer: {payload['customer_id']}")
    lines += [f"When:     {_when(payload['ts'])}", f"Alert:    #{payload['alert_id']}"]
    if payload.get("detail"):
        lines.append(f"Detail:   {payload['detail']}")
    return subject, "\n".join(lines) + "\n"


def _when(ts: int | None) -> str:
    return "?" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP-date: rare from webhook receivers; the backoff covers it


class WebhookSender:
    def __init__(
        self, config: WebhookChannel, session: aiohttp.ClientSession, wall: Callable[[], float]
    ) -> None:
        self.timeout_s = config.timeout_s
        self._url = config.url
        self._secret = config.secret_value()
        self._session = session
        self._wall = wall

    async def send(self, item: Outgoing) -> None:
        body = item.payload.encode("utf-8")
        timestamp = int(self._wall())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: item.idem_key,
        }
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return
                snippet = (await response.content.read(_ERROR_SNIPPET)).decode("utf-8", "replace")
                raise DeliveryFailed(
                    f"HTTP {response.status}: {snippet}".strip(),
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise DeliveryFailed(f"{type(err).__name__}: {err}".rstrip(": ")) from err

    async def aclose(self) -> None:
        return None


class TelegramSender:
    def __init__(self, config: TelegramChannel, session: aiohttp.ClientSession) -> None:
        self.timeout_s = config.timeout_s
        self._token = config.token_value()
        self._url = f"{config.base_url}/bot{self._token}/sendMessage"
        self._session = session

    async def send(self, item: Outgoing) -> None:
        subject, body = render_text(json.loads(item.payload))
        text = f"{subject}\n\n{body}"
        if len(text) > TELEGRAM_MAX_CHARS:
            text = text[: TELEGRAM_MAX_CHARS - 2] + "\n…"
        request = {"chat_id": item.target, "text": text, "disable_web_page_preview": True}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self._session.post(
                self._url, json=request, timeout=timeout, allow_redirects=False
            ) as resp:
                try:
                    reply = await resp.json(content_type=None)
                except ValueError:
                    reply = {}
                if resp.status == 200 and isinstance(reply, dict) and reply.get("ok") is True:
                    return
                reply = reply if isinstance(reply, dict) else {}
                parameters = reply.get("parameters") or {}
                raise DeliveryFailed(
                    f"HTTP {resp.status}: {reply.get('description', '')}".strip(),
                    retry_after=_retry_after(str(parameters.get("retry_after", "")) or None),
                )
        except (aiohttp.ClientError, TimeoutError) as err:
            # aiohttp errors can quote the URL, which carries the bot token.
            message = f"{type(err).__name__}: {err}".replace(self._token, "***").rstrip(": ")
            raise DeliveryFailed(message) from None

    async def aclose(self) -> None:
        return None


class EmailSender:
    """smtplib in a thread of this channel's own: a mail server that hangs holds that one thread (for
    at most the socket timeout), never the event loop and never the default executor polling uses."""

    def __init__(self, name: str, config: EmailChannel, wall: Callable[[], float]) -> None:
        self.timeout_s = config.timeout_s
        self._config = config
        self._password = config.password_value()
        self._wall = wall
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"notify-smtp-{name}")

    async def send(self, item: Outgoing) -> None:
        subject, body = render_text(json.loads(item.payload))
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = ", ".join(self._config.to)
        message["Subject"] = subject
        message["Date"] = format_datetime(datetime.fromtimestamp(self._wall(), UTC))
        # The same Message-ID on every attempt: a mail client shows a retried message once.
        message["Message-ID"] = (
            f"<{hashlib.sha256(item.idem_key.encode()).hexdigest()[:32]}@hashinsight-edge>"
        )
        message["X-HashInsight-Key"] = item.idem_key
        message.set_content(body)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                await loop.run_in_executor(self._executor, self._send_blocking, message)
        except TimeoutError:
            raise DeliveryFailed(f"SMTP: no complete exchange within {self.timeout_s:g} s") from None

    def _send_blocking(self, message: EmailMessage) -> None:
        config = self._config
        try:
            with smtplib.SMTP(config.host, config.port, timeout=self.timeout_s) as smtp:
                smtp.ehlo()
                if config.starttls != "off" and smtp.has_extn("starttls"):
                    context = ssl.create_default_context(
                        cafile=str(config.ca_file) if config.ca_file else None
                    )
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif config.starttls == "required":
                    raise DeliveryFailed("SMTP server does not offer STARTTLS and starttls = required")
                if config.username is not None:
                    smtp.login(config.username, self._password or "")
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryFailed(f"SMTP: {type(err).__name__}: {err}") from err

    async def aclose(self) -> None:
        # Do not wait for a thread stuck in a hung server: its socket timeout ends it.
        self._executor.shutdown(wait=False, cancel_futures=True)
