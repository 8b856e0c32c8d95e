"""The `[notifications]` section of site.toml: secrets only from env or files, clear errors for the
mistakes people make (a route to a channel that does not exist, a severity that does not exist, a
login that would go out in clear)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.alerts.notify_config import EmailChannel, TelegramChannel, WebhookChannel
from gateway.config import ConfigError, describe, load_settings
from gateway.rules.findings import Severity

SITE_TOML = """
demo = true

[notifications.channels.ops]
type = "webhook"
url = "https://hooks.example.net/hashinsight"
timeout_s = 5
budget = { max_messages = 20, window_s = 600 }
retry = { initial_s = 2, max_s = 300 }

[notifications.channels.ops_email]
type = "email"
host = "mail.example.net"
port = 587
starttls = "required"
username = "gateway@example.net"
from = "gateway@example.net"
to = ["noc@example.net", "tech@example.net"]

[notifications.channels.techs]
type = "telegram"
chat_ids = [-1001234567890, "@site_alerts"]

[[notifications.routes]]
channel = "ops"                 # everything, every site and customer

[[notifications.routes]]
channel = "ops_email"
min_severity = "P1"
customers = ["acme"]

[[notifications.routes]]
channel = "techs"
min_severity = "P0"
kinds = ["opened", "reopened"]
"""

ENV = {
    "HASHINSIGHT_NOTIFICATIONS__CHANNELS__OPS__SECRET": "webhook-shared-secret",
    "HASHINSIGHT_NOTIFICATIONS__CHANNELS__OPS_EMAIL__PASSWORD": "smtp-password",
    "HASHINSIGHT_NOTIFICATIONS__CHANNELS__TECHS__TOKEN": "123456:bot-token",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_section_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SITE_TOML), environ=ENV).notifications
    ops, mail, techs = (settings.channels[name] for name in ("ops", "ops_email", "techs"))
    assert isinstance(ops, WebhookChannel) and ops.secret_value() == b"webhook-shared-secret"
    assert ops.budget.max_messages == 20 and ops.retry.max_s == 300
    assert isinstance(mail, EmailChannel) and mail.password_value() == "smtp-password"
    assert mail.sender == "gateway@example.net" and mail.to == ["noc@example.net", "tech@example.net"]
    assert isinstance(techs, TelegramChannel) and techs.token_value() == "123456:bot-token"
    assert techs.chat_ids == ["-1001234567890", "@site_alerts"]
    assert techs.base_url == "https://api.telegram.org"
    assert [r.min_severity for r in settings.routes] == [Severity.P3, Severity.P1, Severity.P0]


def test_describe_never_shows_a_secret(tmp_path: Path) -> None:
    shown = str(describe(load_settings(write(tmp_path, SITE_TOML), environ=ENV)))
    for secret in ENV.values():
        assert secret not in shown
    assert "'min_severity': 'P1'" in shown


def test_secrets_can_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "ops.secret"
    secret.write_text("from-a-file\n")
    text = SITE_TOML.replace("timeout_s = 5", f'timeout_s = 5\nsecret_file = "{secret}"')
    env = {k: v for k, v in ENV.items() if "__OPS__" not in k}
    ops = load_settings(write(tmp_path, text), environ=env).notifications.channels["ops"]
    assert isinstance(ops, WebhookChannel) and ops.secret_value() == b"from-a-file"


def test_defaults_carry_no_channels_and_no_secrets() -> None:
    settings = load_settings(environ={}, demo=True).notifications
    assert settings.channels == {} and settings.routes == []


@pytest.mark.parametrize(
    ("edit", "env", "message"),
    [
        # A secret in the file: refused, and the error says which env variable to use instead.
        (
            ("timeout_s = 5", 'timeout_s = 5\nsecret = "oops"'),
            ENV,
            "HASHINSIGHT_NOTIFICATIONS__CHANNELS__OPS__SECRET",
        ),
        (("chat_ids = [", 'token = "123:abc"\nchat_ids = ['), ENV, "notifications.channels.techs.token"),
        # No secret at all.
        (None, {k: v for k, v in ENV.items() if "__OPS__" not in k}, "secret is required"),
        (
            ("timeout_s = 5", 'timeout_s = 5\nsecret_file = "/nonexistent/x"'),
            ENV,
            "give secret or secret_file",
        ),
        (('channel = "ops_email"', 'channel = "ops-mail"'), ENV, "'ops-mail' is not a configured channel"),
        (('min_severity = "P1"', 'min_severity = "P7"'), ENV, "unknown severity 'P7'"),
        (('kinds = ["opened", "reopened"]', 'kinds = ["openned"]'), ENV, "unknown event kinds ['openned']"),
        (('starttls = "required"', 'starttls = "auto"'), ENV, "password can go over the wire in clear"),
        (('url = "https://hooks', 'url = "ftp://hooks'), ENV, "is not an http(s) URL"),
        (("[notifications.channels.ops]", "[notifications.channels.Ops]"), {}, "channel name 'Ops'"),
        (("[notifications.channels.ops]", "[notifications.channels.opz]"), ENV, "channel 'ops' has no type"),
        (('to = ["noc@example.net"', 'to = ["noc"'), ENV, "not email addresses: 'noc'"),
        (("port = 587", "port = 587\nretries = 3"), ENV, "retries: Extra inputs are not permitted"),
        (
            ("retry = { initial_s = 2, max_s = 300 }", "retry = { initial_s = 20, max_s = 3 }"),
            ENV,
            "max_s (3)",
        ),
        (("max_messages = 20", "max_messages = 0"), ENV, "budget.max_messages"),
        (('type = "telegram"', 'type = "pager"'), ENV, "does not match any of the expected tags"),
    ],
)
def test_mistakes_are_refused_with_a_clear_error(
    tmp_path: Path, edit: tuple[str, str] | None, env: dict[str, str], message: str
) -> None:
    text = SITE_TOML if edit is None else SITE_TOML.replace(edit[0], edit[1], 1)
    assert edit is None or text != SITE_TOML
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env)
    assert message in str(caught.value)
    for secret in ENV.values():
        assert secret not in str(caught.value)


def test_a_secret_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    text = SITE_TOML.replace("timeout_s = 5", 'timeout_s = 5\nsecret_file = "/nonexistent/ops.secret"')
    env = {k: v for k, v in ENV.items() if "__OPS__" not in k}
    with pytest.raises(ConfigError, match=r"notifications.channels.ops.webhook: .*cannot read secret file"):
        load_settings(write(tmp_path, text), environ=env)
