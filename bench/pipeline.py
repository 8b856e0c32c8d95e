"""Pipeline benchmark: the real gateway polling a 10,000-miner simulated site, and pyasic on the same fleet.

    .venv/bin/python bench/pipeline.py [--miners 10000] [--cycles 5] [--interval 30] [--processes 4]
                                       [--pyasic-sample N] [--pyasic-concurrency 200] [--skip-pyasic]

The fleet is the simulator's default mix (`gateway.simulator.fleet.DEFAULT_MIX`: stock Antminer,
Whatsminer and Avalon, Braiins OS, LuxOS and Vnish), served by `--processes` separate `hashinsight
simulate` processes on 127.110+i.*, so the CPU and memory measured here are the gateway's alone.

The gateway is the real one (`gateway.runtime.Gateway`: poll coordinator with its default concurrency,
deadline and spread; drivers; meter; DuckDB writer thread; scheduler; local API), run in this process
on a fresh data directory with the fleet in its inventory. For `--cycles` poll cycles it records, per
cycle: wall time and lateness, miners read (vs fleet size), process CPU over the cycle's period (from
the previous cycle's end; all threads, so the DuckDB writer counts), the DuckDB write time of its batch
(`TelemetryStore.stats`), RSS, and for diagnosis the simulators' CPU, the worst event-loop lag and the
garbage collector's CPU. Peak RSS is the process's high-water mark (ru_maxrss) before pyasic runs.

Disk: the raw tier's bytes per row are measured on the rows the gateway stored, appended again (time
shifted) until DuckDB holds full row groups, in a file of their own; x miners x cycles per day (24 h
retention) projects the tier. As an upper bound, the telemetry file's growth between checkpoints after
the first and the last batch (every tier, partial row groups, blocks freed by live-table rewrites).

Then pyasic (`get_miner` + `get_data`, `--pyasic-concurrency` at a time) reads the same fleet once,
in this process after the gateway has stopped, so neither disturbs the other's figures. With
`--pyasic-sample N` it reads a random sample of N miners and the fleet figure is an extrapolation
(wall and CPU scale linearly with the count at a fixed concurrency once N >> concurrency); the output
says so.

Every figure is printed next to its target (issue 4) with PASS/MISS. No assertion: benchmarks report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import load_settings
from gateway.devices.model import MinerStatus, Sample
from gateway.polling import CycleStats
from gateway.runtime import Gateway
from gateway.simulator.fleet import DEFAULT_MIX
from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry import TelemetryStore

CLK_TCK = os.sysconf("SC_CLK_TCK")
Row = dict[str, Any]  # one miner of a simulator's inventory file
TARGET_CPU_SHARE = 0.5  # of one core
TARGET_RSS_MB = 600


# --- the simulated site ----------------------------------------------------------------------------


@dataclass
class SimProcess:
    proc: subprocess.Popen[bytes]
    log: Path
    inventory: Path

    def cpu_s(self) -> float:
        return _proc_cpu_s(self.proc.pid)


def _proc_cpu_s(pid: int, stat: str | None = None) -> float:
    try:
        fields = Path(stat or f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


@contextlib.contextmanager
def site(miners: int, processes: int, workdir: Path) -> Iterator[tuple[list[Row], list[SimProcess]]]:
    """Start `processes` simulators sharing `miners` between them; yield the inventory and the processes."""
    exe = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"
    sims: list[SimProcess] = []
    share = [miners // processes + (1 if i < miners % processes else 0) for i in range(processes)]
    try:
        for i, count in enumerate(share):
            log, inventory = workdir / f"sim{i}.log", workdir / f"sim{i}.json"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [exe, "simulate", "--miners", str(count), "--seed", str(i + 1),
                     "--first-address", f"127.{110 + i}.0.1", "--control-port", "0",
                     "--inventory", str(inventory)],
                    stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            sims.append(SimProcess(proc, log, inventory))
        deadline = time.monotonic() + 300
        for sim in sims:
            while "inventory written" not in sim.log.read_text(errors="replace"):
                if sim.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"a simulator did not start:\n{sim.log.read_text(errors='replace')}")
                time.sleep(0.5)
        rows = [row for sim in sims for row in json.loads(sim.inventory.read_text())]
        yield rows, sims
    finally:
        for sim in sims:
            sim.proc.terminate()
        for sim in sims:
            try:
                sim.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.proc.kill()


def register(data_dir: Path, rows: list[dict[str, Any]]) -> None:
    conn = open_state(data_dir / "state.db")
    try:
        fields = set(InventoryRow.__dataclass_fields__)
        upsert_miners(
            conn,
            [
                InventoryRow(id=r["ip"], **{k: v for k, v in r.items() if k in fields and v is not None})
                for r in rows
            ],
            int(time.time()),
        )
    finally:
        conn.close()


# --- the gateway run -------------------------------------------------------------------------------


@dataclass
class CycleRecord:
    stats: CycleStats
    read_ok: int  # distinct miners with a reading that is not `offline`
    end_cpu_s: float
    end_rss_mb: float
    cpu_s: float = 0.0  # process CPU over this cycle's period (previous cycle's end to this one's)
    lag_s: float = 0.0  # worst event-loop lag seen during the cycle's period
    gc_s: float = 0.0  # CPU spent in Python's garbage collector during the cycle's period
    handover_s: float = 0.0  # CPU of the gateway's end-of-cycle hand-over (meter, batch queued, rules)
    loop_cpu_s: float = 0.0  # the part of cpu_s spent on the main (event-loop) thread
    write_s: float = float("nan")  # DuckDB write of this cycle's batch
    sim_cpu_s: float = float("nan")


@dataclass
class GatewayRun:
    cycles: list[CycleRecord] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    db_bytes_after_first: int = 0
    db_bytes_after_last: int = 0
    raw_rows: int = 0
    write_errors: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


def _main_thread_cpu_s() -> float:
    """CPU of this process's main thread (the event loop: polling, parsing, metering, rules)."""
    return _proc_cpu_s(os.getpid(), f"/proc/{os.getpid()}/task/{os.getpid()}/stat")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run_gateway(data_dir: Path, cycles: int, interval: float, sims: list[SimProcess]) -> GatewayRun:
    deadline = min(5.0, interval / 3)  # the default (5 s) unless a short trial interval needs less
    settings = load_settings(
        None, environ={}, demo=True, polling={"interval_s": interval, "deadline_s": deadline},
        api={"port": 0},
    )  # fmt: skip
    gateway = Gateway(settings, data_dir)
    result = GatewayRun()
    done = asyncio.Event()
    sizes: list[Any] = []

    def checkpoint(conn: Any) -> int:
        conn.execute("CHECKPOINT")
        return gateway.store.size_bytes()

    lag = [0.0]
    batch_writes: list[float] = []  # the writer's time for each poll batch, in order

    def note_writes() -> None:
        stats = gateway.store.stats
        if stats.batches > len(batch_writes):  # (if two landed between looks, they share the time)
            new = stats.batches - len(batch_writes)
            share = (stats.total_write_s - sum(batch_writes)) / new
            batch_writes.extend([share] * new)

    async def watch() -> None:
        # How late a 50 ms sleep wakes up: the event loop's backlog (a saturated loop starts reads late).
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            lag[0] = max(lag[0], loop.time() - before - 0.05)
            note_writes()

    gc_time = [0.0, 0.0]  # total, start of the current collection

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_time[1] = time.process_time()
        else:
            gc_time[0] += time.process_time() - gc_time[1]

    gc.callbacks.append(on_gc)
    await gateway.start()
    watcher = asyncio.create_task(watch())
    sink = gateway.poller.sink
    cpu0, wall0 = time.process_time(), time.perf_counter()
    marks = [(cpu0, sum(s.cpu_s() for s in sims), _main_thread_cpu_s())]

    def recording_sink(samples: list[Sample], stats: CycleStats) -> None:
        handover = time.process_time()
        sink(samples, stats)  # the gateway's own: meter, queue the batch, health rules
        handover = time.process_time() - handover
        if done.is_set():
            return  # the shutdown's partial cycle
        read_ok = len({s.miner_id for s in samples if s.status is not MinerStatus.OFFLINE})
        record = CycleRecord(
            stats, read_ok, time.process_time(), _rss_mb(), lag_s=lag[0], gc_s=gc_time[0], handover_s=handover
        )
        result.cycles.append(record)
        lag[0] = gc_time[0] = 0.0
        marks.append((time.process_time(), sum(s.cpu_s() for s in sims), _main_thread_cpu_s()))
        n = len(result.cycles)
        print(
            f"  cycle {n}: {stats.duration_s:6.2f} s, read {read_ok}/{len(gateway.inventory)}, "
            f"failed {stats.failed} {dict(stats.errors_by_kind) or ''}",
            file=sys.stderr,
            flush=True,
        )
        if n in (1, cycles):
            sizes.append(gateway.store.run(checkpoint))  # runs right after this cycle's batch
        if n == cycles:
            done.set()

    gateway.poller.sink = recording_sink
    try:
        await done.wait()
        await asyncio.to_thread(gateway.store.flush, 120)
        note_writes()
        result.wall_s = time.perf_counter() - wall0
        result.cpu_s = time.process_time() - cpu0
        result.peak_rss_mb = _peak_rss_mb()
        result.write_errors = gateway.store.stats.errors
        # Per cycle: CPU from the previous cycle's end to this one's (so it holds the previous batch's
        # write, on the writer thread); the write time is this cycle's own batch.
        for i, record in enumerate(result.cycles):
            record.cpu_s = marks[i + 1][0] - marks[i][0]
            record.sim_cpu_s = marks[i + 1][1] - marks[i][1]
            record.loop_cpu_s = marks[i + 1][2] - marks[i][2]
            record.write_s = batch_writes[i] if i < len(batch_writes) else float("nan")
        first, last = sizes[0].result(timeout=120), sizes[-1].result(timeout=120)
        result.db_bytes_after_first, result.db_bytes_after_last = first, last
        result.raw_rows = gateway.store.query("SELECT count(*) AS n FROM samples_raw")[0]["n"]
    finally:
        watcher.cancel()
        gc.callbacks.remove(on_gc)
        await gateway.stop()
    return result


@dataclass
class RawTierSize:
    rows: int  # raw rows the gateway stored
    copied_rows: int  # rows in the measured copy (the stored rows, repeated to fill DuckDB row groups)
    bytes_per_row: float


def measure_raw_tier(telemetry: Path, workdir: Path, fill_rows: int = 250_000) -> RawTierSize:
    """Bytes per `samples_raw` row once DuckDB holds full row groups (122,880 rows; a few cycles hold
    less, and a partial group compresses worse). The stored rows are appended again with their
    timestamps shifted past the run, as later cycles would be, into a file of their own, so the other
    tiers, free blocks and the write-ahead log do not count."""
    import duckdb

    path = workdir / "raw-tier.duckdb"
    conn = duckdb.connect(str(path))
    try:
        conn.execute(f"ATTACH '{telemetry}' AS run (READ_ONLY)")
        conn.execute("CREATE TABLE samples_raw AS SELECT * FROM run.samples_raw LIMIT 0")
        conn.execute("CHECKPOINT")
        empty = path.stat().st_size
        rows, span = conn.execute("SELECT count(*), max(ts) - min(ts) + 1 FROM run.samples_raw").fetchone()
        copied = 0
        for copy in range(max(1, -(-fill_rows // max(1, rows)))):
            conn.execute(
                "INSERT INTO samples_raw SELECT * REPLACE (ts + ? AS ts) FROM run.samples_raw ORDER BY rowid",
                [copy * span],
            )
            copied += rows
        conn.execute("CHECKPOINT")
        size = path.stat().st_size
    finally:
        conn.close()
    return RawTierSize(rows, copied, (size - empty) / max(1, copied))


# --- pyasic on the same fleet ----------------------------------------------------------------------


@dataclass
class PyasicRun:
    sampled: int
    fleet: int
    concurrency: int
    wall_s: float
    cpu_s: float
    identified: int
    read_ok: int
    failures: dict[str, int]

    @property
    def extrapolated(self) -> bool:
        return self.sampled < self.fleet

    @property
    def fleet_wall_s(self) -> float:
        return self.wall_s * self.fleet / self.sampled

    @property
    def fleet_cpu_s(self) -> float:
        return self.cpu_s * self.fleet / self.sampled


async def run_pyasic(rows: list[dict[str, Any]], sample: int, concurrency: int) -> PyasicRun | str:
    try:
        import pyasic
    except ImportError:
        return "pyasic not installed"
    chosen = rows if sample >= len(rows) else random.Random(4).sample(rows, sample)
    semaphore = asyncio.Semaphore(concurrency)
    failures: dict[str, int] = {}
    identified = read_ok = 0

    def fail(key: str) -> None:
        failures[key] = failures.get(key, 0) + 1

    async def one(row: dict[str, Any]) -> None:
        nonlocal identified, read_ok
        async with semaphore:
            try:
                miner = await pyasic.get_miner(row["ip"])
                if miner is None:
                    fail(f"{row['family']}: not identified")
                    return
                identified += 1
                data = await miner.get_data()
            except Exception as err:
                fail(f"{row['family']}: {type(err).__name__}")
                return
            if data.hashrate is None:
                fail(f"{row['family']}: no hashrate")
            else:
                read_ok += 1

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(row) for row in chosen))
    return PyasicRun(
        len(chosen), len(rows), concurrency, time.perf_counter() - wall0, time.process_time() - cpu0,
        identified, read_ok, failures,
    )  # fmt: skip


# --- the report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    args: argparse.Namespace, fleet: int, run: GatewayRun, raw: RawTierSize, py: PyasicRun | str | None
) -> None:
    interval = args.interval
    cpu_target = interval * TARGET_CPU_SHARE
    per_day = 86_400 / interval
    print()
    print(f"fleet: {fleet} simulated miners, simulator's default mix ({DEFAULT_MIX})")
    print(f"simulators: {args.processes} separate processes; gateway: this process; {os.cpu_count()} cores")
    print(f"poll interval {interval:g} s, {len(run.cycles)} cycles, gateway defaults otherwise")
    print()
    print(
        f"{'cycle':>5} {'wall s':>7} {'late s':>7} {'read/fleet':>12} {'failed':>6} {'CPU s':>7} "
        f"{'% core':>7} {'write s':>8} {'RSS MB':>7} {'sim CPU s':>9} {'max lag s':>9} {'GC s':>6} "
        f"{'handover s':>10} {'loop CPU s':>10}"
    )
    for n, c in enumerate(run.cycles, 1):
        print(
            f"{n:5d} {c.stats.duration_s:7.2f} {c.stats.lateness_s:7.2f} {f'{c.read_ok}/{fleet}':>12} "
            f"{c.stats.failed:6d} {c.cpu_s:7.2f} {100 * c.cpu_s / interval:6.1f}% {c.write_s:8.3f} "
            f"{c.end_rss_mb:7.0f} {c.sim_cpu_s:9.2f} {c.lag_s:9.2f} {c.gc_s:6.2f} "
            f"{c.handover_s:10.2f} {c.loop_cpu_s:10.2f}"
        )
    walls = [c.stats.duration_s for c in run.cycles]
    cpus = [c.cpu_s for c in run.cycles]
    writes = [c.write_s for c in run.cycles]
    reads = [c.read_ok for c in run.cycles]
    steady = cpus[1:] or cpus
    growth = run.db_bytes_after_last - run.db_bytes_after_first
    per_cycle_bytes = growth / max(1, len(run.cycles) - 1)
    day_bytes = per_cycle_bytes * per_day
    raw_day_bytes = raw.bytes_per_row * fleet * per_day
    bytes_per_row = per_cycle_bytes / fleet
    print()
    rows: list[tuple[str, str, str, str]] = [
        ("cycle wall time (max)", f"{max(walls):.2f} s", f"<= {interval:g} s",
         verdict(max(walls) <= interval)),
        ("miners read per cycle (min)", f"{min(reads)} of {fleet}", f"= {fleet} every cycle",
         verdict(min(reads) == fleet)),
        ("gateway CPU per cycle (max)", f"{max(cpus):.2f} s = {100 * max(cpus) / interval:.0f} % core",
         f"<= {cpu_target:g} s (50 % core)", verdict(max(cpus) <= cpu_target)),
        ("gateway CPU per cycle (mean, 2nd on)", f"{sum(steady) / len(steady):.2f} s = "
         f"{100 * sum(steady) / len(steady) / interval:.0f} % core", f"<= {cpu_target:g} s",
         verdict(sum(steady) / len(steady) <= cpu_target)),
        ("gateway CPU over the whole run", f"{100 * run.cpu_s / run.wall_s:.0f} % core",
         "<= 50 % core", verdict(run.cpu_s / run.wall_s <= TARGET_CPU_SHARE)),
        ("DuckDB write per cycle (max / mean)", f"{max(writes):.3f} / {sum(writes) / len(writes):.3f} s",
         "(reported)", ""),
        ("DuckDB batches that failed", f"{run.write_errors}", "0", verdict(run.write_errors == 0)),
        ("peak RSS", f"{run.peak_rss_mb:.0f} MB", f"<= {TARGET_RSS_MB} MB",
         verdict(run.peak_rss_mb <= TARGET_RSS_MB)),
        ("raw tier disk per day (full row groups)", f"{raw_day_bytes / 1e9:.2f} GB", "(reported)", ""),
        ("  upper bound (file growth, all tiers)", f"{day_bytes / 1e9:.2f} GB", "(reported)", ""),
    ]  # fmt: skip
    for name, value, target, ok in rows:
        print(f"{name:38} {value:>28}   target {target:26} {ok}")
    print(
        f"  raw tier: {raw.bytes_per_row:.0f} B per row, measured on the {raw.rows} stored rows appended to "
        f"{raw.copied_rows} (full DuckDB row groups) in a file of their own; x {fleet} miners x "
        f"{per_day:.0f} cycles per day (24 h raw retention)"
    )
    print(
        f"  upper bound: telemetry.duckdb grew {growth / 1e6:.1f} MB over the last {len(run.cycles) - 1} "
        f"cycles (checkpointed after the 1st and the last batch: every tier, partial row groups, blocks "
        f"freed by miner_live rewrites) = {per_cycle_bytes / 1e6:.2f} MB per cycle = {bytes_per_row:.0f} B "
        f"per raw row, x {per_day:.0f} cycles per day"
    )
    if py is None:
        return
    print()
    if isinstance(py, str):
        print(f"pyasic: {py}")
        return
    what = (
        f"EXTRAPOLATED from a random sample of {py.sampled} of {py.fleet} miners"
        if py.extrapolated
        else f"measured on all {py.fleet} miners"
    )
    print(f"pyasic get_miner + get_data, {py.concurrency} at a time, {what}:")
    print(
        f"  {'sample' if py.extrapolated else 'read'}: {py.wall_s:.1f} s wall, {py.cpu_s:.1f} s CPU; "
        f"identified {py.identified}, "
        f"read {py.read_ok} of {py.sampled}; failures {py.failures or 'none'}"
    )
    label = "pyasic, one read of the fleet" + (" (extrapolated)" if py.extrapolated else "")
    ours_cpu = sum(steady) / len(steady)
    print(
        f"{label:38} {py.fleet_wall_s:10.1f} s wall, {py.fleet_cpu_s:7.1f} s CPU   "
        f"vs the gateway: every {interval:g} s, {ours_cpu:.1f} s CPU per cycle "
        f"({py.fleet_cpu_s / ours_cpu:.0f}x less CPU); pyasic fits a {interval:g} s interval: "
        f"{'yes' if py.fleet_wall_s <= interval else 'no'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4, help="simulator processes")
    parser.add_argument("--skip-pyasic", action="store_true")
    parser.add_argument("--pyasic-sample", type=int, default=0, help="read N random miners (0: all)")
    parser.add_argument("--pyasic-concurrency", type=int, default=200)
    args = parser.parse_args()
    if args.cycles < 2:
        parser.error("--cycles must be at least 2 (disk growth is measured between cycles)")

    with tempfile.TemporaryDirectory(prefix="hashinsight-bench-") as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"
        print(f"starting {args.processes} simulator processes for {args.miners} miners ...", file=sys.stderr)
        with site(args.miners, args.processes, workdir) as (rows, sims):
            register(data_dir, rows)
            TelemetryStore(data_dir / "telemetry.duckdb").close()  # schema in place before timing
            print(f"gateway: {args.cycles} cycles at {args.interval:g} s ...", file=sys.stderr)
            run = asyncio.run(run_gateway(data_dir, args.cycles, args.interval, sims))
            raw_tier = measure_raw_tier(data_dir / "telemetry.duckdb", workdir)
            py: PyasicRun | str | None = None
            if not args.skip_pyasic:
                sample = args.pyasic_sample or len(rows)
                print(f"pyasic: reading {min(sample, len(rows))} miners ...", file=sys.stderr)
                py = asyncio.run(run_pyasic(rows, sample, args.pyasic_concurrency))
    report(args, len(rows), run, raw_tier, py)


if __name__ == "__main__":
    main()
