"""Real receivers for the notifier's tests: an aiohttp webhook receiver that checks signatures the way
a customer's receiver should, a fake Telegram Bot API, aiosmtpd SMTP servers (plain and STARTTLS with
a self-signed certificate made at test time), and a TCP server that accepts and never answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.alerts.channels import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from gateway.alerts.notify import NotificationEvent
from gateway.rules.findings import Severity

T0 = 1_700_000_000


def free_port() -> int:
    """A loopback port nothing listens on (yet): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def event(
    alert_id: int, kind: str = "opened", severity: Severity = Severity.P1, **extra: Any
) -> NotificationEvent:
    fields: dict[str, Any] = {
        "kind": kind,
        "alert_id": alert_id,
        "miner_id": f"miner-{alert_id}",
        "rule_id": "hashrate_zero",
        "severity": severity,
        "ts": T0 + alert_id,
        "detail": f"0 TH/s for 3 samples (alert {alert_id})",
    }
    return NotificationEvent(**{**fields, **extra})


async def until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Wait for a condition the notifier brings about; the timeout only bounds a failing test."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for: {what}")
        await asyncio.sleep(0.02)


@dataclass
class Attempt:
    key: str
    body: bytes
    signed_ok: bool
    mode: str
    at: float


@dataclass
class WebhookReceiver:
    """mode: "ok" (200), "error" (500), "hang" (never answers until the test ends)."""

    secret: bytes
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    clock: Callable[[], float] = time.time  # the receiver's wall clock, for the replay window
    attempts: list[Attempt] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def count(self, mode: str) -> int:
        return sum(1 for attempt in self.attempts if attempt.mode == mode)

    @property
    def accepted_ids(self) -> list[int | str]:
        return [p["alert_id"] if p["type"] == "alert" else "digest" for p in self.accepted]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed_ok = verify(
            self.secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            now=self.clock(),
        )
        mode = self.mode
        self.attempts.append(
            Attempt(request.headers.get(IDEMPOTENCY_HEADER, ""), body, signed_ok, mode, time.time())
        )
        if not signed_ok:
            return web.Response(status=401, text="bad signature")
        if mode == "hang":
            await self._release.wait()
            return web.Response(status=503, text="released")
        if mode == "error":
            return web.Response(status=500, text="receiver is broken")
        self.accepted.append(json.loads(body))
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class TelegramFake:
    """The Bot API's sendMessage, as far as the notifier uses it. `rate_limit` first answers that many
    requests with 429 and parameters.retry_after."""

    token: str
    port: int = field(default_factory=free_port)
    rate_limit: int = 0
    retry_after: int = 1
    sent: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        if self.rate_limit > 0:
            self.rate_limit -= 1
            reply = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry later"}
            return web.json_response({**reply, "parameters": {"retry_after": self.retry_after}}, status=429)
        data = await request.json()
        self.sent.append((str(data["chat_id"]), data["text"]))
        return web.json_response({"ok": True, "result": {"message_id": len(self.sent)}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# --- SMTP ----------------------------------------------------------------------------------------------


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost, made now: the client trusts it through `ca_file`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    tls: bool
    login: str | None


class MailSink:
    """aiosmtpd handler: keeps every message with how it arrived (over TLS? logged in as whom?)."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.original_content or b""
        login = (
            session.auth_data.decode()
            if session.authenticated and isinstance(session.auth_data, bytes)
            else None
        )
        self.received.append(
            Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                message=message_from_bytes(content),
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 OK"


def smtp_server(
    sink: MailSink,
    *,
    cert: tuple[Path, Path] | None = None,
    users: dict[str, str] | None = None,
) -> Controller:
    """A real SMTP server on a free loopback port, in its own thread (aiosmtpd's Controller). With
    `cert` it offers STARTTLS and refuses mail before it; with `users` it requires a login (over TLS)."""
    kwargs: dict[str, Any] = {}
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if users is not None:

        def authenticator(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and users.get(data.login.decode()) == data.password.decode()
            # handled=False: the server answers 535 itself on a failure (handled=True would leave it silent).
            return AuthResult(success=ok, handled=False, auth_data=data.login if ok else None)

        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    return controller


async def silent_server() -> asyncio.Server:
    """Accepts connections and never says a word: a hung SMTP server or HTTP endpoint."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the client gives up
        finally:
            writer.close()

    return await asyncio.start_server(hold, "127.0.0.1", 0)
