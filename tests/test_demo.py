"""The README's main job: `hashinsight demo` runs a simulated site and a real gateway, raises alerts
for the miners it gave faults, and stops cleanly (exit 0) on SIGTERM, removing its temporary data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.test_cli import HASHINSIGHT


def test_demo_runs_raises_alerts_and_stops_cleanly_on_sigterm() -> None:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen([HASHINSIGHT, "demo", "--interval", "3"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 150
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("cycle 6:") or time.monotonic() > deadline:
            break
    api = re.search(r"local API (http://127\.0\.0\.1:\d+)/api/fleet", "".join(lines))
    assert api, "".join(lines)
    with urllib.request.urlopen(f"{api.group(1)}/api/alerts", timeout=10) as response:
        alerts = json.load(response)["alerts"]
    # The demo site has its tariff in force: the gateway's energy service priced without complaint.
    assert "figures without cost" not in "".join(lines)
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
    # The faults the demo injects show up as alerts within a few cycles, each on its own miner.
    rules = {(a["rule"], a["severity"]) for a in alerts}
    assert {("offline", "P0"), ("fan_zero", "P1"), ("boards_dead", "P1")} <= rules, alerts
    assert {"miner_id", "rule", "severity", "opened_at"} <= set(alerts[0])
    assert "alert P0 offline" in output
    assert "demo stopped cleanly" in output
    data_dir = re.search(r"data in (\S+);", output)
    assert data_dir and not Path(data_dir.group(1)).exists()
