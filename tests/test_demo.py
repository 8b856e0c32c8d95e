"""The README's main job: `hashinsight demo` runs a simulated site and a real gateway, and stops
cleanly (exit 0) on SIGTERM, removing its temporary data directory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.test_cli import HASHINSIGHT


def test_demo_runs_and_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([HASHINSIGHT, "demo", "--interval", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("cycle 2:") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "120 simulated miners" in output
    cycle = re.search(r"cycle 2: (\d+)/120 ok, (\d+) offline, (\d+) failing, ([\d.]+) PH/s", output)
    assert cycle, output
    ok, offline, failing = (int(cycle.group(n)) for n in (1, 2, 3))
    assert ok >= 110 and ok + offline + failing <= 120  # seven miners carry faults, two of them unreachable
    assert float(cycle.group(4)) > 1
    assert "demo stopped cleanly" in output
    data_dir = re.search(r"data in (\S+);", output)
    assert data_dir and not Path(data_dir.group(1)).exists()
