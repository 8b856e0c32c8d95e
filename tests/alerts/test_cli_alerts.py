"""`hashinsight alerts ...` where no gateway is needed: what it says when none answers, and how it
reads durations. (Against a running gateway: tests/alerts/test_api_alerts.py.)"""

from __future__ import annotations

import socket

import pytest
import typer
from typer.testing import CliRunner

from gateway.cli import app
from gateway.cli.alerts import parse_duration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "list"],
        ["alerts", "show", "1"],
        ["alerts", "ack", "1", "--actor", "alice"],
        ["alerts", "resolve", "1", "--actor", "alice"],
        ["alerts", "suppress", "1", "--for", "1h", "--reason", "x", "--actor", "alice"],
    ],
)
def test_without_a_gateway_it_says_so(args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, [*args, "--api", url])
    assert result.exit_code == 1
    assert f"no gateway answering at {url}" in result.output and "hashinsight run" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_bad_api_url_is_an_error_not_a_traceback() -> None:
    result = CliRunner().invoke(app, ["alerts", "list", "--api", "not a url"])
    assert result.exit_code == 1 and "no gateway answering" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1w", 604800)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "1h-5m", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_duration(text)
