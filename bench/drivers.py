"""Driver benchmark: poll one simulated fleet with our backends, with pyasic and with pyasic-rs.

    .venv/bin/python bench/drivers.py [--miners 1000] [--mix s19=1] [--concurrency 200] [--rounds 3]

The fleet runs in its own process (`hashinsight simulate`), so the CPU time measured here is the
client's alone (process CPU: all threads, which matters for pyasic-rs's Tokio runtime). Each client
identifies the fleet once (untimed: a poller does that at registration, not every cycle), then reads
every miner `--rounds` times with the same concurrency. Printed per client: miners read per second,
client CPU ms per miner read, failures; then the ratios the issue asks for (target: ours <= 1/10 of
pyasic's CPU per miner).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.devices.driver import Credentials, DriverContext, Endpoint
from gateway.devices.model import FirmwareFamily
from gateway.devices.profiles import load_profiles
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits


@dataclass
class Result:
    name: str
    reads: int
    failures: int
    wall_s: float
    cpu_s: float

    @property
    def per_second(self) -> float:
        return self.reads / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms_per_read(self) -> float:
        return 1000 * self.cpu_s / self.reads if self.reads else float("nan")


@contextlib.contextmanager
def fleet(miners: int, mix: str, first_address: str) -> Any:
    """Start the simulator in its own process; yield its inventory rows."""
    exe = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"
    with tempfile.TemporaryDirectory() as tmp:
        inventory = Path(tmp) / "fleet.json"
        proc = subprocess.Popen(
            [
                exe,
                "simulate",
                "--miners",
                str(miners),
                "--mix",
                mix,
                "--first-address",
                first_address,
                "--control-port",
                "0",
                "--inventory",
                str(inventory),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(f"  [simulator] {line.rstrip()}", file=sys.stderr)
                if line.startswith("inventory written"):
                    break
                if proc.poll() is not None:
                    raise SystemExit("the simulator exited before serving")
            yield json.loads(inventory.read_text())
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def timed(
    name: str, calls: Sequence[Callable[[], Awaitable[Any]]], concurrency: int, rounds: int
) -> Result:
    semaphore = asyncio.Semaphore(concurrency)
    failures = 0

    async def one(call: Callable[[], Awaitable[Any]]) -> None:
        nonlocal failures
        async with semaphore:
            try:
                await call()
            except Exception:
                failures += 1

    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        await asyncio.gather(*(one(call) for call in calls))
    return Result(
        name, len(calls) * rounds, failures, time.perf_counter() - wall0, time.process_time() - cpu0
    )


async def ours(rows: list[dict[str, Any]], concurrency: int, rounds: int) -> Result:
    profiles = load_profiles()
    drivers = [
        make_driver(
            FirmwareFamily(row["family"]),
            DriverContext(
                miner_id=row["ip"],
                endpoint=Endpoint(host=row["ip"], rpc_port=row["rpc_port"], web_port=row["web_port"]),
                credentials=Credentials(username=row["username"], password=row["password"]),
                limits=RpcLimits(deadline_s=10.0),
                profiles=profiles,
                model_hint=row["model"],
            ),
        )
        for row in rows
    ]
    return await timed("hashinsight", [d.read for d in drivers], concurrency, rounds)


async def pyasic_client(rows: list[dict[str, Any]], concurrency: int, rounds: int) -> Result | str:
    try:
        import pyasic
    except ImportError:
        return "pyasic not installed"
    semaphore = asyncio.Semaphore(concurrency)

    async def identify(ip: str) -> Any:
        async with semaphore:
            return await pyasic.get_miner(ip)

    miners = [m for m in await asyncio.gather(*(identify(r["ip"]) for r in rows)) if m is not None]
    if len(miners) < len(rows):
        print(f"  pyasic identified {len(miners)} of {len(rows)} miners", file=sys.stderr)
    return await timed("pyasic get_data", [m.get_data for m in miners], concurrency, rounds)


async def pyasic_rs_client(rows: list[dict[str, Any]], concurrency: int, rounds: int) -> Result | str:
    try:
        import pyasic_rs
    except ImportError:
        return "pyasic-rs not installed (no wheel for this platform?)"
    factory = pyasic_rs.MinerFactory()
    semaphore = asyncio.Semaphore(concurrency)

    async def identify(ip: str) -> Any:
        async with semaphore:
            return await factory.get_miner(ip)

    miners = [m for m in await asyncio.gather(*(identify(r["ip"]) for r in rows)) if m is not None]
    if len(miners) < len(rows):
        print(f"  pyasic-rs identified {len(miners)} of {len(rows)} miners", file=sys.stderr)
    return await timed("pyasic-rs get_data", [m.get_data for m in miners], concurrency, rounds)


def report(results: list[Result | str], miners: int, mix: str) -> None:
    print(f"\nfleet: {miners} simulated miners ({mix}), simulator in its own process")
    print(f"client process on a {os.cpu_count()}-core machine")
    print(f"{'client':22} {'reads':>7} {'failed':>7} {'miners/s':>10} {'CPU ms/miner':>14}")
    measured = [r for r in results if isinstance(r, Result)]
    for r in results:
        if isinstance(r, Result):
            print(f"{r.name:22} {r.reads:7d} {r.failures:7d} {r.per_second:10.1f} {r.cpu_ms_per_read:14.3f}")
        else:
            print(f"{'':22} {r}")
    base = next((r for r in measured if r.name == "hashinsight"), None)
    if base is None:
        return
    for other in measured:
        if other is base:
            continue
        ratio = other.cpu_ms_per_read / base.cpu_ms_per_read
        speed = base.per_second / other.per_second
        print(f"CPU per miner: {other.name} / hashinsight = {ratio:.1f}x; throughput ratio {speed:.1f}x")
    py = next((r for r in measured if r.name == "pyasic get_data"), None)
    if py is not None:
        verdict = "MET" if base.cpu_ms_per_read <= py.cpu_ms_per_read / 10 else "NOT MET"
        print(
            f"target (ours <= 1/10 of pyasic's CPU per miner): {verdict} "
            f"({base.cpu_ms_per_read:.3f} ms vs {py.cpu_ms_per_read / 10:.3f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--mix", default="s19=1")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-address", default="127.60.0.1")
    parser.add_argument("--skip", action="append", default=[], choices=["pyasic", "pyasic-rs"])
    args = parser.parse_args()

    async def run(rows: list[dict[str, Any]]) -> list[Result | str]:
        results: list[Result | str] = [await ours(rows, args.concurrency, args.rounds)]
        if "pyasic" not in args.skip:
            results.append(await pyasic_client(rows, args.concurrency, args.rounds))
        if "pyasic-rs" not in args.skip:
            results.append(await pyasic_rs_client(rows, args.concurrency, args.rounds))
        return results

    with fleet(args.miners, args.mix, args.first_address) as rows:
        results = asyncio.run(run(rows))
    report(results, args.miners, args.mix)


if __name__ == "__main__":
    main()
