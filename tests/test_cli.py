"""`hashinsight devices parse` and `hashinsight profiles`, run as a user runs them: the installed
console script in a subprocess, on the real captures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devices.capture import FIXTURES

HASHINSIGHT = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"

CAPTURE_SETS = {
    "antminer": [
        "antminer/s9_bmminer_stats.json",
        "antminer/s9_bmminer_pools.json",
        "antminer/s9_bmminer_version.json",
    ],
    "whatsminer": [
        "whatsminer/m31s_summary.json",
        "whatsminer/m31s_edevs.json",
        "whatsminer/m31s_pools.json",
    ],
    "avalon": [
        "avalon/avalon_q_stats.json",
        "avalon/avalon_q_summary.json",
        "avalon/avalon_q_pools.json",
        "avalon/avalon_q_version.json",
    ],
    "braiins": [
        f"braiins/s9_bosminer_plus_{c}.json" for c in ("summary", "devs", "fans", "temps", "pools", "version")
    ],
    "luxos": [
        f"luxos/s19kpro_{c}.json"
        for c in (
            "summary",
            "stats",
            "devs",
            "pools",
            "fans",
            "temps",
            "power",
            "profiles",
            "config",
            "version",
        )
    ],
    "vnish": [
        "vnish/s21pro_rpc_stats.json",
        "vnish/s21pro_rpc_summary.json",
        "vnish/s21pro_rpc_pools.json",
        "vnish/s21pro_rpc_devdetails.json",
        "vnish/s21pro_web_api_v1_summary.json",
        "vnish/s21pro_web_api_v1_info.json",
    ],
}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HASHINSIGHT, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("family", sorted(CAPTURE_SETS))
def test_parse_every_family(family: str) -> None:
    files = [str(FIXTURES / name) for name in CAPTURE_SETS[family]]
    result = run("devices", "parse", "--family", family, "--ts", "1700000000", *files)
    assert result.returncode == 0, result.stderr
    sample = json.loads(result.stdout)
    assert sample["ts"] == 1700000000
    assert sample["status"] in {"mining", "sleeping", "idle", "error"}
    assert sample["hashrate_ths"] is None or sample["hashrate_ths"] >= 0
    assert sample["boards"], "every capture set here names its hashboards"
    assert sample["identity"]["firmware"] == family


def test_repairs_are_reported_on_stderr() -> None:
    result = run("devices", "parse", "-f", "antminer", str(FIXTURES / "antminer/s9_bmminer_stats.json"))
    assert result.returncode == 0, result.stderr
    assert "repaired: '}{' between objects" in result.stderr
    assert json.loads(result.stdout)["hashrate_ths"] == pytest.approx(13.88381)


def test_key_equals_file_form(tmp_path: Path) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_bytes((FIXTURES / "antminer/s19pro_fw2022_stats.json").read_bytes())
    result = run("devices", "parse", "-f", "antminer", f"stats={reply}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["hashrate_ths"] > 0


@pytest.mark.parametrize(
    ("content", "args", "code", "message"),
    [
        (None, ["devices", "parse", "-f", "antminer", "/nonexistent/x_stats.json"], 2, "no such file"),
        (b"", ["devices", "parse", "-f", "antminer", "{file}"], 1, "empty reply"),
        (
            b"\x00\x01garbage",
            ["devices", "parse", "-f", "antminer", "{file}"],
            1,
            "not a readable miner reply",
        ),
        (
            b'{"STATUS":[{"STATUS":"S"}],"STATS":[{"GHS 5s":',
            ["devices", "parse", "-f", "antminer", "{file}"],
            1,
            "truncated",
        ),
        (
            b"<html>login</html>",
            ["devices", "parse", "-f", "antminer", "{file}"],
            1,
            "not a readable miner reply",
        ),
        (b'{"a": 1}', ["devices", "parse", "-f", "antminer", "{file}"], 1, "ProtocolError"),
        (b"[1, 2, 3]", ["devices", "parse", "-f", "antminer", "{file}"], 1, "ProtocolError"),
        (b"{}", ["devices", "parse", "-f", "nosuchfirmware", "{file}"], 2, "unknown family"),
        (b"{}", ["devices", "parse", "-f", "antminer", "{dir}/mystery.json"], 2, "cannot tell which command"),
        (b"{}", ["devices", "parse", "-f", "antminer", "{dir}"], 2, "is a directory"),
    ],
)
def test_bad_input_gives_a_clear_error(
    tmp_path: Path, content: bytes | None, args: list[str], code: int, message: str
) -> None:
    target = tmp_path / "x_stats.json"
    if content is not None:
        target.write_bytes(content)
        (tmp_path / "mystery.json").write_bytes(content)
    result = run(*(a.format(file=target, dir=tmp_path) for a in args))
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_oversized_capture_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big_stats.json"
    big.write_bytes(b" " * (3 * 1024 * 1024))
    result = run("devices", "parse", "-f", "antminer", str(big))
    assert result.returncode == 1
    assert "larger than any miner reply" in result.stderr


def test_profiles_check_and_list() -> None:
    checked = run("profiles", "check")
    assert checked.returncode == 0, checked.stderr
    assert "profiles OK" in checked.stdout
    listed = run("profiles", "list")
    assert "antminer_s19_pro" in listed.stdout


def test_profiles_check_names_the_bad_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('make = "Antminer"\nmodel = "X"\n')
    result = run("profiles", "check", str(tmp_path))
    assert result.returncode == 1
    assert "broken.toml" in result.stderr
    assert "field" in result.stderr


@pytest.mark.parametrize("args", [[], ["devices"], ["profiles"], ["devices", "parse", "--help"]])
def test_help_teaches(args: list[str]) -> None:
    result = run(*args, "--help") if args and args[-1] != "--help" else run(*(args or ["--help"]))
    assert result.returncode == 0
    assert "Usage" in result.stdout
