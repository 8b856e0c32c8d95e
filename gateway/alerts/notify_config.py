"""The `[notifications]` section of `site.toml`: channels, routes and budgets.

Channels are a table keyed by name (`[notifications.channels.ops]`) rather than a list, so that a
secret can be given per channel through the environment (`HASHINSIGHT_NOTIFICATIONS__CHANNELS__OPS__SECRET`)
the same way every other setting is overridden. Secrets (webhook signing secret, SMTP password,
Telegram bot token) have no defaults and may be given in the environment or in a file the service
user can read (`secret_file`, `password_file`, `token_file`); `gateway.config.load_settings` refuses
them written inline in the TOML file, which tends to end up in a repository (ARCHITECTURE §8).

This module only depends on pydantic and the severity scale, so `gateway.config` can import it without
pulling in the network code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)

from gateway.rules.findings import Severity

# Event kinds a route may name. The lifecycle emits these; a typo in `kinds` must be an error, not a
# route that silently never matches.
KNOWN_KINDS = ("opened", "reopened", "resolved", "acked", "suppressed", "unsuppressed")
DEFAULT_KINDS = ("opened", "reopened", "resolved")
CHANNEL_NAME = r"^[a-z][a-z0-9_]*$"
# (channel type, field) pairs that hold secrets; used to refuse them inline in a TOML file.
SECRET_FIELDS = {"webhook": ("secret",), "email": ("password",), "telegram": ("token",)}


def parse_severity(value: object) -> Severity:
    """'P1', 'p1', 1 or Severity.P1 -> Severity.P1, with an error that lists what is allowed."""
    if isinstance(value, Severity):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2, 3):
        return Severity(value)
    if isinstance(value, str) and value.upper() in Severity.__members__:
        return Severity[value.upper()]
    raise ValueError(f"unknown severity {value!r} (one of P0, P1, P2, P3; P0 is the worst)")


# Written and shown as "P1"; held as the IntEnum so comparisons read "at least as bad as".
SeverityField = Annotated[
    Severity, BeforeValidator(parse_severity), PlainSerializer(lambda s: s.name, return_type=str)
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise ValueError(f"cannot read {what} file {path}: {err.strerror or err}") from None


def _one_secret(value: SecretStr | None, path: Path | None, field: str, *, required: bool) -> None:
    if value is not None and path is not None:
        raise ValueError(f"give {field} or {field}_file, not both")
    secret = _read_secret(value, path, field)
    if required and not secret:
        raise ValueError(
            f"{field} is required: set it in the environment "
            f"(HASHINSIGHT_NOTIFICATIONS__CHANNELS__<NAME>__{field.upper()}) or give {field}_file"
        )


class Budget(_Section):
    """At most `max_messages` individual messages per `window_s`; the rest go into one digest sent when
    the window ends. A fleet-wide event (a breaker trips, 300 miners go offline) must not bury the one
    alert that matters under 300 that say the same thing."""

    max_messages: int = Field(default=20, ge=1, le=10_000)
    window_s: int = Field(default=600, ge=1, le=24 * 3600)


class Retry(_Section):
    """Exponential backoff between attempts of one delivery. There is no attempt limit: a notification
    is never dropped, it waits at `max_s` intervals until the receiver takes it."""

    initial_s: float = Field(default=5.0, ge=0.01, le=3600)
    max_s: float = Field(default=600.0, ge=0.01, le=24 * 3600)

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s:g}) must be >= initial_s ({self.initial_s:g})")
        return self


class _ChannelBase(_Section):
    timeout_s: float = Field(default=10.0, gt=0, le=300)  # one attempt, connect to reply, all included
    budget: Budget = Budget()
    retry: Retry = Retry()


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/") if parts.path in ("", "/") else value


class WebhookChannel(_ChannelBase):
    """POST the alert as JSON, signed (HMAC-SHA256 over timestamp and body) with a shared secret."""

    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    secret_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @model_validator(mode="after")
    def _has_secret(self) -> WebhookChannel:
        _one_secret(self.secret, self.secret_file, "secret", required=True)
        return self

    def secret_value(self) -> bytes:
        secret = _read_secret(self.secret, self.secret_file, "secret")
        assert secret  # validated at load
        return secret.encode("utf-8")


class EmailChannel(_ChannelBase):
    """SMTP. `starttls = "required"` refuses to send when the server does not offer STARTTLS (a
    man in the middle can strip the offer); "auto" upgrades when offered; "off" never does."""

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: Literal["required", "auto", "off"] = "required"
    ca_file: Path | None = None  # trust this CA (a site's own mail relay) instead of the system store
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    timeout_s: float = Field(default=20.0, gt=0, le=300)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("sender")
    @classmethod
    def _sender_address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"{value!r} is not an email address")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if "@" not in address]
        if bad:
            raise ValueError(f"not email addresses: {', '.join(map(repr, bad))}")
        return value

    @model_validator(mode="after")
    def _login_needs_tls(self) -> EmailChannel:
        _one_secret(self.password, self.password_file, "password", required=self.username is not None)
        if self.username is not None and self.starttls != "required":
            raise ValueError(
                'a login needs starttls = "required": otherwise the password can go over the wire in clear'
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist")
        return self

    def password_value(self) -> str | None:
        return _read_secret(self.password, self.password_file, "password")


class TelegramChannel(_ChannelBase):
    """Bot API `sendMessage` to each chat id. `base_url` is configurable for a local Bot API server
    (and for tests)."""

    type: Literal["telegram"]
    token: SecretStr | None = None
    token_file: Path | None = None
    chat_ids: list[str] = Field(min_length=1)
    base_url: str = "https://api.telegram.org"

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("chat_ids", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        # Chat ids are integers (negative for groups) or @channelname; TOML gives ints for the former.
        if isinstance(value, list):
            return [
                str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in value
            ]
        return value

    @model_validator(mode="after")
    def _has_token(self) -> TelegramChannel:
        _one_secret(self.token, self.token_file, "token", required=True)
        return self

    def token_value(self) -> str:
        token = _read_secret(self.token, self.token_file, "token")
        assert token  # validated at load
        return token


Channel = Annotated[WebhookChannel | EmailChannel | TelegramChannel, Field(discriminator="type")]


class Route(_Section):
    """Send events at or worse than `min_severity` (P0 is worst) to `channel`; `sites`/`customers`,
    when given, restrict the route to events of those sites/customers (an event without a customer
    does not match a route that names customers)."""

    channel: str
    min_severity: SeverityField = Severity.P3
    sites: list[str] | None = None
    customers: list[str] | None = None
    kinds: list[str] = Field(default_factory=lambda: list(DEFAULT_KINDS), min_length=1)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        unknown = [kind for kind in value if kind not in KNOWN_KINDS]
        if unknown:
            raise ValueError(f"unknown event kinds {unknown} (known: {', '.join(KNOWN_KINDS)})")
        return value


class NotificationSettings(_Section):
    enabled: bool = True
    channels: dict[str, Channel] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    # How often the notifier looks at the outbox without being woken (a digest's window ending, an
    # enqueue from another connection).
    poll_s: float = Field(default=2.0, gt=0, le=60)
    # A channel with an undelivered message older than this is reported as failing (metric + log).
    alarm_after_s: float = Field(default=900.0, gt=0)

    @field_validator("channels", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        """Checked before the channels themselves: environment keys arrive lowercased, so a channel
        named `Ops` in the file and `..._CHANNELS__OPS__SECRET` in the env would be two half channels."""
        if not isinstance(value, dict):
            return value
        for name, channel in value.items():
            if not re.match(CHANNEL_NAME, name) or "__" in name:
                raise ValueError(
                    f"channel name {name!r}: use lowercase letters, digits and single underscores, so "
                    f"its secret can be set as HASHINSIGHT_NOTIFICATIONS__CHANNELS__<NAME>__SECRET"
                )
            if isinstance(channel, dict) and "type" not in channel:
                raise ValueError(
                    f"channel {name!r} has no type (webhook, email or telegram); if it comes only from "
                    f"HASHINSIGHT_NOTIFICATIONS__CHANNELS__{name.upper()}__* variables, site.toml lacks "
                    f"its [notifications.channels.{name}] table"
                )
        return value

    @model_validator(mode="after")
    def _routes_name_channels(self) -> NotificationSettings:
        for index, route in enumerate(self.routes):
            if route.channel not in self.channels:
                have = ", ".join(sorted(self.channels)) or "none"
                raise ValueError(
                    f"routes[{index}].channel: {route.channel!r} is not a configured channel (have: {have})"
                )
        return self


def inline_secrets(raw_toml: dict[str, Any]) -> list[str]:
    """Dotted keys of notification secrets written inline in a TOML file (refused by load_settings)."""
    found: list[str] = []
    channels = raw_toml.get("notifications", {}).get("channels", {})
    if not isinstance(channels, dict):
        return found
    for name, channel in channels.items():
        if not isinstance(channel, dict):
            continue
        for field in SECRET_FIELDS.get(str(channel.get("type")), ()):
            if channel.get(field):
                env = f"HASHINSIGHT_NOTIFICATIONS__CHANNELS__{name.upper()}__{field.upper()}"
                found.append(f"notifications.channels.{name}.{field} (use env {env} or {field}_file)")
    return found
