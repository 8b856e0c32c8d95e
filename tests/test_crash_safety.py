"""Crash safety of the running gateway, as an operator would meet it: `hashinsight run` processes
killed at random points while they poll a simulated site, and a clean stop with SIGTERM.

Everything is a real process: the site is a `hashinsight simulate` subprocess (127.82.x.x belongs to
this module), the inventory comes in with `hashinsight inventory import` of the simulator's inventory
JSON, and the gateway runs from a site.toml with its data dir in tmp_path. The databases are examined
between runs, while no gateway has them open (ARCHITECTURE §4).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from gateway.devices.model import MinerStatus, Sample, Source
from gateway.metering import INTERVAL_S, meter

HASHINSIGHT = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"
TABLES = ("samples_raw", "miner_live", "samples_5m", "samples_daily", "energy_15m")
API_LINE = re.compile(r"local API on http://127\.0\.0\.1:(\d+)")
GUARD_S = 60.0  # how long to wait for a process to do something before calling the test stuck


def environment() -> dict[str, str]:
    """The subprocesses' environment: unbuffered output (we read it line by line), and no data dir
    override, so the gateway uses the one in its site.toml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHINSIGHT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Site:
    control_url: str
    inventory: list[dict[str, Any]]
    data_dir: Path
    config: Path


def start_site(
    tmp_path: Path, first_address: str, miners: int, mix: str, polling: dict[str, Any]
) -> Iterator[Site]:
    """A simulated site in its own process, its inventory imported, and a site.toml for the gateway."""
    fleet_json = tmp_path / "fleet.json"
    simulate = subprocess.Popen(
        [HASHINSIGHT, "simulate", "--miners", str(miners), "--mix", mix, "--seed", "11",
         "--first-address", first_address, "--control-port", "0", "--inventory", str(fleet_json)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment(),
    )  # fmt: skip
    try:
        assert simulate.stdout is not None
        control_url = None
        deadline = time.monotonic() + GUARD_S
        output = []
        while control_url is None and time.monotonic() < deadline:
            line = simulate.stdout.readline()
            if not line:
                break
            output.append(line)
            if match := re.match(r"control API: (http://\S+)", line):
                control_url = match.group(1)
        assert control_url is not None, "".join(output)
        threading.Thread(target=simulate.stdout.read, daemon=True).start()  # keep the pipe drained

        data_dir = tmp_path / "data"
        imported = subprocess.run(
            [HASHINSIGHT, "inventory", "import", str(fleet_json), "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=GUARD_S, env=environment(), check=False,
        )  # fmt: skip
        assert imported.returncode == 0 and f"imported {miners} miner(s)" in imported.stdout, imported.stderr
        config = tmp_path / "site.toml"
        config.write_text(
            "demo = true\n"
            f'data_dir = "{data_dir}"\n'
            '[site]\nid = "crash-test"\n'
            "[polling]\n" + "".join(f"{key} = {value}\n" for key, value in polling.items()) +
            '[api]\nhost = "127.0.0.1"\nport = 0\n'
        )  # fmt: skip
        yield Site(control_url, json.loads(fleet_json.read_text()), data_dir, config)
    finally:
        simulate.terminate()
        try:
            simulate.wait(timeout=30)
        except subprocess.TimeoutExpired:
            simulate.kill()
            simulate.wait()


class GatewayProcess:
    """`hashinsight run --config site.toml`, with its log read as it is written."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [HASHINSIGHT, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment(),
        )  # fmt: skip
        self.log: list[str] = []
        self.port: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            if self.port is None and (match := API_LINE.search(line)):
                self.port = int(match.group(1))

    def get(self, path: str) -> str:
        assert self.port is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=GUARD_S) as response:
            body: bytes = response.read()
        return body.decode()

    def metric(self, name: str) -> float:
        for line in self.get("/metrics").splitlines():
            if line.startswith(f"hashinsight_{name} "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def wait_for(self, condition: str, check: Any) -> None:
        deadline = time.monotonic() + GUARD_S
        while not check():
            assert self.proc.poll() is None, f"gateway exited ({self.proc.returncode}):\n{''.join(self.log)}"
            assert time.monotonic() < deadline, f"gave up waiting for {condition}:\n{''.join(self.log)}"
            time.sleep(0.02)

    def wait_for_cycles(self, cycles: int) -> None:
        self.wait_for(
            f"{cycles} completed cycle(s)",
            lambda: self.port is not None and self.metric("poll_cycles_total") >= cycles,
        )

    def finish(self) -> str:
        self.proc.wait(timeout=GUARD_S)
        self._reader.join(timeout=GUARD_S)
        return "".join(self.log)


@pytest.fixture
def launch() -> Iterator[Callable[[Path], GatewayProcess]]:
    """Start gateways; any still running when the test ends (it failed half-way) are killed."""
    started: list[GatewayProcess] = []

    def start(config: Path) -> GatewayProcess:
        started.append(GatewayProcess(config))
        return started[-1]

    yield start
    for gateway in started:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.wait(timeout=GUARD_S)


def check_state_db(data_dir: Path, miners: int) -> None:
    conn = sqlite3.connect(data_dir / "state.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM miners").fetchone() == (miners,)
    finally:
        conn.close()


@dataclass
class Telemetry:
    """What the checks need from telemetry.duckdb, read after a full scan of every table."""

    samples: list[Sample]  # samples_raw in arrival (rowid) order
    energy: dict[tuple[str, int], tuple[int, int, int, int]]  # (miner, interval) -> joules, covered, ...

    def per_miner(self) -> dict[str, list[Sample]]:
        grouped: dict[str, list[Sample]] = defaultdict(list)
        for sample in self.samples:
            grouped[sample.miner_id].append(sample)
        return grouped


def read_telemetry(data_dir: Path) -> Telemetry:
    """Open the file as the next gateway would find it (read-only: the WAL is replayed, not merged) and
    scan every table in full; any damage surfaces here as an exception."""
    with duckdb.connect(str(data_dir / "telemetry.duckdb"), read_only=True) as conn:
        for table in TABLES:
            conn.execute(f"SELECT * FROM {table}").fetchall()
        raw = conn.execute(
            "SELECT miner_id, ts, status, power_w, power_estimated FROM samples_raw ORDER BY rowid"
        ).fetchall()
        energy = conn.execute(
            "SELECT miner_id, interval_start, joules, covered_s, uncovered_s, estimated_s FROM energy_15m"
        ).fetchall()
        keys = conn.execute("SELECT count(*), count(DISTINCT (miner_id, interval_start)) FROM energy_15m")
        total, distinct = keys.fetchone() or (0, 0)
        assert total == distinct, "an interval stored twice"
    samples = [
        Sample(
            miner_id=miner_id, ts=ts, status=MinerStatus(status), power_w=power_w,
            power_source=None if estimated is None else (Source.ESTIMATED if estimated else Source.MEASURED),
        )
        for miner_id, ts, status, power_w, estimated in raw
    ]  # fmt: skip
    return Telemetry(samples, {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in energy})


def check_batches(telemetry: Telemetry, miner_ids: set[str], cycle_span_s: float) -> int:
    """Every stored batch is complete, and batches are whole cycles in order. Returns how many.

    With `offline_after_failures = 1` every cycle yields exactly one sample per miner (a reading, or an
    offline sample for a miner that failed or is backed off), and a cycle is written as one batch.
    So, if and only if no batch was written in part: every miner has the same number of rows; the
    k-th rows (in arrival order) of all miners come from one cycle, so their timestamps lie within one
    cycle's span (deadline, +1 s for whole-second stamps); and cycle k+1 starts after cycle k ended."""
    per_miner = telemetry.per_miner()
    if not per_miner:
        return 0
    assert set(per_miner) == miner_ids
    counts = {miner_id: len(rows) for miner_id, rows in per_miner.items()}
    assert len(set(counts.values())) == 1, f"a partial batch: rows per miner differ: {counts}"
    previous_end = None
    for k, group in enumerate(zip(*per_miner.values(), strict=True)):
        stamps = [sample.ts for sample in group]
        assert max(stamps) - min(stamps) <= cycle_span_s, f"batch {k} mixes cycles: {stamps}"
        if previous_end is not None:
            assert min(stamps) >= previous_end, f"batch {k} overlaps the one before: {stamps}"
        previous_end = max(stamps)
    return next(iter(counts.values()))


def check_energy(telemetry: Telemetry) -> None:
    """No 15-minute interval is counted twice: each stored (miner, interval) row equals the meter's
    recomputation from the stored raw samples (a batch replayed, or a restart that re-added energy,
    would make the stored row larger), and no interval holds more than the miner's highest reading
    for 900 s."""
    recomputed = {
        (row.miner_id, row.interval_start): (row.joules, row.covered_s, row.uncovered_s, row.estimated_s)
        for row in meter(telemetry.samples)
    }
    assert telemetry.energy == recomputed
    peak = defaultdict(float)
    for sample in telemetry.samples:
        peak[sample.miner_id] = max(peak[sample.miner_id], sample.power_w or 0.0)
    for (miner_id, _), (joules, covered_s, uncovered_s, _) in telemetry.energy.items():
        assert 0 <= joules <= peak[miner_id] * INTERVAL_S + 1
        assert covered_s + uncovered_s <= INTERVAL_S


CRASH_POLLING = {
    "interval_s": 5, "spread": 0, "deadline_s": 1, "offline_after_failures": 1, "backoff_max_s": 5,
}  # fmt: skip


@pytest.fixture
def crash_site(tmp_path: Path) -> Iterator[Site]:
    yield from start_site(tmp_path, "127.82.0.1", 6, "s19jpro=0.5,s21pro@vnish=0.25,s21pro@braiins=0.25",
                          CRASH_POLLING)  # fmt: skip


def test_sigkill_at_random_points_loses_at_most_the_batch_in_flight(
    crash_site: Site, launch: Callable[[Path], GatewayProcess]
) -> None:
    """Twenty runs of `hashinsight run`, each SIGKILLed at a random point (seeded) and restarted on the
    same data dir: every other run after a delay anywhere in 0.3 - 8 s (start-up included), the others
    in the first 0.4 s of their second cycle, where reads, metering and the batch's write happen.
    Poll interval 5 s, spread 0, deadline 1 s: a cycle's samples are stamped within 2 s, and cycles
    are 5 s apart.

    After each kill, with no gateway running:
    * state.db passes `PRAGMA integrity_check`; telemetry.duckdb opens and every table scans in full;
    * every stored batch is complete (see check_batches);
    * raw samples lost are at most the last batch: the gateway's own count of completed cycles,
      scraped from its /metrics just before the kill (C), against the batches this run added to
      samples_raw (S): C - 1 <= S <= C + 1. (A cycle finishing between the scrape and the kill
      may add one more; a run killed before its API was up has C = 0.)
    * no 15-minute energy interval is counted twice (see check_energy).
    Finally the gateway starts once more on the same files and stops cleanly."""
    rng = random.Random(20240604)
    miner_ids = {row["ip"] for row in crash_site.inventory}
    span = CRASH_POLLING["deadline_s"] + 1
    stored_before = 0
    stored_by_run = []
    for run in range(20):
        gateway = launch(crash_site.config)
        if run % 2 == 0:  # anywhere: starting up, migrating, polling, idle between cycles
            time.sleep(rng.uniform(0.3, 8.0))
        else:  # inside the second cycle's busy part: reads, meter, the batch's transaction
            gateway.wait_for_cycles(1)
            first_started = time.time() - gateway.metric("poll_cycle_duration_seconds")
            kill_at = first_started + CRASH_POLLING["interval_s"] + rng.uniform(0.0, 0.4)
            time.sleep(max(0.0, kill_at - time.time()))
        assert gateway.proc.poll() is None, (
            f"run {run}: the gateway exited by itself:\n{''.join(gateway.log)}"
        )
        cycles = int(gateway.metric("poll_cycles_total")) if gateway.port is not None else 0
        gateway.proc.send_signal(signal.SIGKILL)
        log = gateway.finish()
        assert gateway.proc.returncode == -signal.SIGKILL
        assert "Traceback" not in log, log

        check_state_db(crash_site.data_dir, len(miner_ids))
        telemetry = read_telemetry(crash_site.data_dir)
        stored = check_batches(telemetry, miner_ids, span)
        added = stored - stored_before
        assert cycles - 1 <= added <= cycles + 1, f"run {run}: {cycles} cycles polled, {added} batches stored"
        check_energy(telemetry)
        stored_before = stored
        stored_by_run.append(added)

    assert sum(stored_by_run) >= 10, f"the runs hardly polled; nothing much was tested: {stored_by_run}"
    final = launch(crash_site.config)
    final.wait_for_cycles(1)
    final.proc.send_signal(signal.SIGTERM)
    log = final.finish()
    assert final.proc.returncode == 0 and "gateway stopped cleanly" in log, log
    telemetry = read_telemetry(crash_site.data_dir)
    assert check_batches(telemetry, miner_ids, span) > stored_before
    check_energy(telemetry)
    check_state_db(crash_site.data_dir, len(miner_ids))


SIGTERM_POLLING = {"interval_s": 6, "spread": 0, "deadline_s": 4, "offline_after_failures": 100}


@pytest.fixture
def hung_site(tmp_path: Path) -> Iterator[Site]:
    yield from start_site(tmp_path, "127.82.1.1", 4, "s19jpro=1", SIGTERM_POLLING)


def test_sigterm_exits_zero_and_writes_the_cycle_in_flight(
    hung_site: Site, launch: Callable[[Path], GatewayProcess]
) -> None:
    """One of four miners hangs, so every cycle stays open for the whole deadline (4 s) after the
    healthy miners have answered. SIGTERM is sent when the API shows the healthy miners' readings from
    a cycle that has not completed yet; the gateway must exit 0, and those readings must be in
    samples_raw (the cycle in flight is handed over and flushed) besides those of the completed cycles
    (counted by the gateway's /metrics just before the signal), with their energy, and the DuckDB WAL
    checkpointed into the file."""
    hung_ip = hung_site.inventory[0]["ip"]
    request = urllib.request.Request(
        f"{hung_site.control_url}/miners/{hung_ip}/faults", data=b'{"kind": "hung"}', method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=GUARD_S) as response:
        assert response.status == 200
    healthy = {row["ip"] for row in hung_site.inventory} - {hung_ip}

    gateway = launch(hung_site.config)
    in_flight: dict[str, int] = {}

    def healthy_read_in_an_open_cycle() -> bool:
        if gateway.port is None:
            return False
        fleet = json.loads(gateway.get("/api/fleet"))
        last = fleet["totals"]["last_cycle"]
        if last is None:
            return False
        # Readings stamped after the last completed cycle's start + half an interval are from the next
        # cycle, which has not completed (the hung miner holds it open for 4 s).
        fresh = {m["ip"]: m["ts"] for m in fleet["miners"] if m["ts"] and m["ts"] >= last["started_at"] + 3}
        if set(fresh) != healthy:
            return False
        in_flight.update(fresh)
        return True

    gateway.wait_for("healthy readings in an open cycle", healthy_read_in_an_open_cycle)
    completed = int(gateway.metric("poll_cycles_total"))
    gateway.proc.send_signal(signal.SIGTERM)
    log = gateway.finish()
    assert gateway.proc.returncode == 0, log
    assert "gateway stopped cleanly" in log and "Traceback" not in log, log

    telemetry = read_telemetry(hung_site.data_dir)
    stored = {(s.miner_id, s.ts) for s in telemetry.samples if s.status is MinerStatus.MINING}
    assert set(in_flight.items()) <= stored, (in_flight, sorted(stored))
    # One reading per healthy miner per cycle: the completed cycles', and the interrupted one's.
    assert {len(rows) for rows in telemetry.per_miner().values()} == {completed + 1}
    assert set(telemetry.per_miner()) == healthy
    check_energy(telemetry)
    assert all(key[0] in healthy for key in telemetry.energy)
    wal = hung_site.data_dir / "telemetry.duckdb.wal"
    assert not wal.exists() or wal.stat().st_size == 0
