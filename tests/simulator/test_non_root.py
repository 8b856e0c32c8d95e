"""A user who is not root: the simulator cannot bind port 80, serves the web APIs on 8080 and says
so; scanning with that port (kept per miner in the inventory) still identifies everything, including
what only the web API knows (MAC, serial).

Run as the unprivileged `nobody` when the suite runs as root (setpriv), or directly otherwise.
Addresses 127.36.x.x belong to this module.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
HASHINSIGHT = shutil.which("hashinsight", path=str(BIN)) or "hashinsight"
NOBODY = 65534


def as_unprivileged(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's own tmp tree is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="hashinsight-nonroot-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unprivileged_simulator(workdir: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    argv = as_unprivileged(
        [HASHINSIGHT, "simulate", "--miners", "3", "--mix", "s21=1", "--first-address", "127.36.0.1",
         "--control-port", "0", "--inventory", str(workdir / "fleet.json")]
    )  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("inventory written") or time.monotonic() > deadline:
            break
    try:
        yield proc, lines
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_unprivileged_simulator_uses_8080_and_everything_still_works(
    unprivileged_simulator: tuple[subprocess.Popen[str], list[str]], workdir: Path
) -> None:
    proc, lines = unprivileged_simulator
    output = "".join(lines)
    assert proc.poll() is None, output
    assert "cannot bind port 80 without root: serving web APIs on port 8080 instead" in output
    assert "web 8080" in output
    inventory = json.loads((workdir / "fleet.json").read_text())
    assert {row["web_port"] for row in inventory} == {8080}

    scan = subprocess.run(
        as_unprivileged(
            [HASHINSIGHT, "scan", "127.36.0.1-3", "--web-port", "8080", "--timeout", "5", "--json",
             "--register", "--data-dir", str(workdir / "state")]
        ),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert scan.returncode == 0, scan.stderr
    found = json.loads(scan.stdout)
    assert [(m["ip"], m["make"], m["model"], m["firmware"]) for m in found] == [
        (f"127.36.0.{n}", "Antminer", "S21", "antminer") for n in (1, 2, 3)
    ]
    # MAC and serial come only from the web API: proof the port override reached the driver.
    assert [m["mac"] for m in found] == [
        row.get("mac") or m["mac"] for row, m in zip(inventory, found, strict=True)
    ]
    assert all(m["mac"] and m["serial"] for m in found)
    with sqlite3.connect(workdir / "state" / "state.db") as db:
        ports = db.execute("SELECT ip, web_port FROM miners ORDER BY ip").fetchall()
    assert ports == [(f"127.36.0.{n}", 8080) for n in (1, 2, 3)]


def test_demo_runs_as_an_unprivileged_user(workdir: Path) -> None:
    """Simulator, gateway and polling together, as `nobody`: web APIs on 8080 via per-miner ports."""
    env = {**os.environ, "COLUMNS": "200", "HOME": str(workdir)}
    run = subprocess.run(
        as_unprivileged([HASHINSIGHT, "demo", "--miners", "24", "--interval", "3", "--duration", "14",
                         "--data-dir", str(workdir / "demo")]),
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    cycles = [line for line in run.stdout.splitlines() if line.startswith("cycle ")]
    assert cycles, run.stdout
    ok = int(cycles[-1].split(":")[1].split("/")[0])
    assert ok >= 18, cycles[-1]  # a few of the 24 carry faults (one hung, one offline)
    assert "demo stopped cleanly" in run.stdout
