"""Site configuration: TOML + HASHINSIGHT_* overrides, every bad value named by its key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.config import ConfigError, describe, load_settings
from tests.test_cli import HASHINSIGHT

GOOD = """
demo = true
[site]
id = "tx-west-1"
name = "Texas West"
timezone = "America/Chicago"
[polling]
interval_s = 15
deadline_s = 4
[api]
port = 9000
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return path


def test_file_then_env_overrides(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, GOOD), environ={"HASHINSIGHT_POLLING__INTERVAL_S": "20"})
    assert settings.site.timezone == "America/Chicago"
    assert settings.polling.interval_s == 20
    assert settings.polling.deadline_s == 4
    assert settings.api.port == 9000


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[polling]\ninterval_s = -5\n", {}, "polling.interval_s"),
        ("[polling]\nintervall_s = 30\n", {}, "polling.intervall_s: Extra inputs are not permitted"),
        ("[site]\ntimezone = 'Mars/Olympus'\n", {}, "site.timezone: unknown IANA time zone"),
        ("[polling]\ninterval_s = 10\ndeadline_s = 9\n", {}, "a cycle cannot end in time"),
        ("[api]\nport = 'eighty'\n", {}, "api.port"),
        ("[site]\nid = 'Has Spaces'\n", {}, "site.id"),
        ("", {"HASHINSIGHT_POLLING__CONCURRENCY": "lots"}, "polling.concurrency"),
        ("[polling\n", {}, "not valid TOML"),
    ],
)
def test_bad_values_are_named_by_key(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        load_settings(write(tmp_path, "demo = true\n" + text), environ=env)


def test_factory_passwords_refused_outside_demo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"credentials\.antminer\.password is a factory default"):
        load_settings(write(tmp_path, "[site]\nid = 'x'\n"), environ={})
    env = {f"HASHINSIGHT_CREDENTIALS__{f.upper()}__PASSWORD": "s3cret-site-pw"
           for f in ("antminer", "whatsminer", "avalon", "braiins", "luxos", "vnish")}  # fmt: skip
    settings = load_settings(write(tmp_path, "[site]\nid = 'x'\n"), environ=env)
    assert describe(settings)["credentials"]["antminer"]["password"] == "***"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_config_check_command(tmp_path: Path) -> None:
    ok = subprocess.run([HASHINSIGHT, "config", "check", str(write(tmp_path, GOOD)), "--show"],
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and '"timezone": "America/Chicago"' in ok.stdout
    bad_file = write(tmp_path, "[polling]\ninterval_s = 0\n")
    bad = subprocess.run(
        [HASHINSIGHT, "config", "check", str(bad_file)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "polling.interval_s" in bad.stderr and "Traceback" not in bad.stderr
