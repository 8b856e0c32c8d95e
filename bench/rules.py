"""Rules benchmark: one evaluation cycle (columns + baselines update + engine + firing findings) for a
10,000-miner site, against the issue-5 target of <= 200 ms per cycle on this machine.

    .venv/bin/python bench/rules.py [--miners 10000] [--cycles 30] [--warmup 12] [--faulty 0.04] [--seed 7]

The fleet mixes the repo's firmware profiles (stock Antminers with estimated power, Whatsminers and
Avalons with measured power, some Braiins-style power limits), with realistic noise: real-time hashrate
+-2 %, power +-0.7 %, chip temperature +-0.8 C, shares every ~10 s. A fraction `--faulty` of the
miners carry one fault each: overheat, warm, fan stopped, dead board, weak board, degrading at
unchanged power, 1 %/poll drift, power spike, stale shares, foreign pool, offline, unplanned sleep; 2 %
sleep on purpose (curtailment); 3 % run in low-power mode.

Samples are built before the clock starts (they are the poller's output, not our cost). The first
`--warmup` cycles fill the baselines and are not timed; then `--cycles` cycles are timed, each split
into its stages. Prints median and p95 per stage and in total, the firing counts per rule of the last
cycle, the baselines' persisted size, and PASS/MISS against the target. No assertion: benchmarks report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.devices.model import BoardReading, MinerStatus, Mode, PoolReading, Sample, Source
from gateway.devices.profiles import load_profiles
from gateway.rules.baselines import Baselines
from gateway.rules.catalog import CATALOG, apply_overrides
from gateway.rules.engine import evaluate
from gateway.rules.findings import FindingState
from gateway.rules.inputs import FleetFrame, MinerInput, Nominal

TARGET_MS = 200.0
INTERVAL_S = 30
MODELS = (
    "antminer_s19_pro",
    "antminer_s21",
    "antminer_s19j_pro",
    "whatsminer_m30s_plus",
    "whatsminer_m50s",
    "avalon_a1246",
)
MEASURED = {"whatsminer_m30s_plus", "whatsminer_m50s", "avalon_a1246"}
FAULTS = ("overheat", "warm", "fan", "dead_board", "weak_board", "degrading", "drift", "spike", "stale",
          "pool", "offline", "asleep")  # fmt: skip
POOL = "stratum+tcp://btc.example-pool.com:3333"


class Fleet:
    """Static per-miner traits and faults; `inputs(cycle)` draws one poll of every miner."""

    def __init__(self, n: int, faulty: float, seed: int) -> None:
        profiles = load_profiles()
        self.rng = np.random.default_rng(seed)
        self.ids = [f"m{i:05d}" for i in range(n)]
        self.models = [MODELS[i % len(MODELS)] for i in range(n)]
        self.profiles = {key: profiles.get(key) for key in MODELS}
        self.nominals = {key: Nominal.from_profile(p) for key, p in self.profiles.items()}
        self.bin = 1 + 0.03 * self.rng.standard_normal(n)  # chip binning: each unit a little different
        self.ambient = 25 + 5 * self.rng.random(n)
        draw = self.rng.random(n)
        self.fault = [FAULTS[int(self.rng.integers(len(FAULTS)))] if d < faulty else "" for d in draw]
        self.intended_sleep = (draw >= faulty) & (draw < faulty + 0.02)
        self.low = (draw >= faulty + 0.02) & (draw < faulty + 0.05)

    def inputs(self, cycle: int) -> list[MinerInput]:
        ts = 1_700_000_000 + cycle * INTERVAL_S
        noise = self.rng.standard_normal((len(self.ids), 4))
        out = []
        for i, mid in enumerate(self.ids):
            key, fault = self.models[i], self.fault[i]
            nominal = self.nominals[key]
            if fault == "offline" and cycle > 5:
                out.append(MinerInput(miner_id=mid, availability="offline", model_key=key, nominal=nominal))
                continue
            sample = self._sample(i, mid, key, fault, ts, cycle, noise[i])
            intended = "sleep" if self.intended_sleep[i] else None
            out.append(
                MinerInput(
                    miner_id=mid, availability="ok", sample=sample, model_key=key, nominal=nominal,
                    intended_state=intended,
                )
            )  # fmt: skip
        return out

    def _sample(self, i: int, mid: str, key: str, fault: str, ts: int, cycle: int, z: np.ndarray) -> Sample:
        nominal = self.nominals[key]
        late = cycle > 8
        if self.intended_sleep[i] or (fault == "asleep" and late):
            return Sample(
                miner_id=mid,
                ts=ts,
                status=MinerStatus.SLEEPING,
                hashrate_ths=0.0,
                power_w=nominal.sleep_w,
                power_source=Source.MEASURED if key in MEASURED else Source.ESTIMATED,
                mode=Mode.SLEEP,
                boards=tuple(BoardReading(slot=s, active=False) for s in range(nominal.boards)),
                fans_rpm=(0,) * nominal.fans,
                pool_url=POOL,
                uptime_s=86_400,
            )
        mode = 0 if self.low[i] else 1
        ths = (nominal.ths[mode] if np.isfinite(nominal.ths[mode]) else 0.8 * nominal.ths[1]) * self.bin[i]
        watts = (
            nominal.watts[mode] if np.isfinite(nominal.watts[mode]) else 0.75 * nominal.watts[1]
        ) * self.bin[i]
        per_board = [ths / nominal.boards] * nominal.boards
        if fault == "dead_board" and late:
            per_board[1] = 0.0
        if fault == "weak_board" and late:
            per_board[2] *= 0.7
        if fault == "degrading" and late:
            per_board = [b * 0.8 for b in per_board]
        if fault == "drift" and late:
            per_board = [b * 0.99 ** (cycle - 8) for b in per_board]
        rate = sum(per_board) * (1 + 0.02 * z[0])
        power = watts * (1 + 0.007 * z[1]) * (1.25 if fault == "spike" and late else 1.0)
        temp = (
            self.ambient[i]
            + 38
            + 0.8 * z[2]
            + {"overheat": 35.0, "warm": 14.0}.get(fault if late else "", 0.0)
        )
        measured = key in MEASURED
        if not measured:
            power = self.profiles[key].estimate_power_w(rate, Mode.NORMAL) or 0.0
        accepted = 5000 + (cycle * 3 if not (fault == "stale" and late) else 27)
        fans = (0, 6000, 6000, 6000) if fault == "fan" and late else (6000,) * nominal.fans
        pool = "stratum+tcp://evil.example.net:3333" if fault == "pool" and late else POOL
        boards = tuple(
            BoardReading(slot=s, hashrate_ths=h * (1 + 0.01 * z[3]), temp_chip_c=temp, temp_board_c=temp - 8)
            for s, h in enumerate(per_board)
        )
        return Sample(
            miner_id=mid,
            ts=ts,
            status=MinerStatus.MINING,
            hashrate_ths=rate,
            power_w=power,
            power_source=Source.MEASURED if measured else Source.ESTIMATED,
            boards=boards,
            fans_rpm=fans,
            accepted=accepted,
            pool_url=pool,
            pools=(PoolReading(url=pool, active=True),),
            mode=Mode.LOW if self.low[i] else Mode.NORMAL,
            uptime_s=86_400 + cycle * INTERVAL_S,
        )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--faulty", type=float, default=0.04)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    fleet = Fleet(args.miners, args.faulty, args.seed)
    table = apply_overrides(CATALOG, {}, {}, allowed_pools=[POOL])
    baselines = Baselines("bench-site")
    stages: dict[str, list[float]] = {
        "columns": [],
        "baselines": [],
        "engine": [],
        "findings": [],
        "total": [],
    }
    print(f"rules bench: {args.miners} miners, {len(table.rules)} rules, {args.faulty:.0%} faulty, "
          f"{args.warmup} untimed warm-up cycles + {args.cycles} timed")  # fmt: skip
    last = None
    for cycle in range(args.warmup + args.cycles):
        inputs = fleet.inputs(cycle)
        now = 1_700_000_000 + cycle * INTERVAL_S
        t0 = time.perf_counter()
        frame = FleetFrame.from_inputs(inputs)
        t1 = time.perf_counter()
        scores = baselines.observe(frame)
        t2 = time.perf_counter()
        evaluation = evaluate(frame, scores, table, now)
        t3 = time.perf_counter()
        firing = evaluation.findings()
        t4 = time.perf_counter()
        if cycle >= args.warmup:
            for name, seconds in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                stages[name].append(seconds * 1000)
        last = (evaluation, firing)
    assert last is not None
    evaluation, firing = last
    print(f"{'stage':<10} {'median ms':>10} {'p95 ms':>8}")
    for name, values in stages.items():
        print(f"{name:<10} {statistics.median(values):>10.1f} {percentile(values, 95):>8.1f}")
    counts = evaluation.counts()
    print("last cycle, miners per rule (firing / unknown / suspended):")
    for rule in evaluation.rules:
        c = counts[rule.id]
        states = " / ".join(f"{c[state]:>5}" for state in ("firing", "unknown", "suspended"))
        print(f"  {rule.id:<24} {rule.severity.label}  {states}")
    t0 = time.perf_counter()
    not_clear = evaluation.findings(states=set(FindingState) - {FindingState.CLEAR})
    all_ms = (time.perf_counter() - t0) * 1000
    print(f"materialising every firing, unknown and suspended finding: {len(not_clear)} in {all_ms:.0f} ms")
    faults: dict[str, int] = {}
    for fault in fleet.fault:
        if fault:
            faults[fault] = faults.get(fault, 0) + 1
    print(f"injected faults: {dict(sorted(faults.items()))}; firing findings materialised: {len(firing)}")
    blob = baselines.to_bytes()
    t0 = time.perf_counter()
    Baselines.from_bytes(blob, site_id="bench-site")
    restore_ms = (time.perf_counter() - t0) * 1000
    print(f"baselines persisted: {len(blob) / 1e6:.2f} MB, restored in {restore_ms:.0f} ms")
    median, p95 = statistics.median(stages["total"]), percentile(stages["total"], 95)
    verdict = "PASS" if p95 <= TARGET_MS else "MISS"
    target = f"target <= {TARGET_MS:.0f} ms"
    print(f"total per cycle: median {median:.1f} ms, p95 {p95:.1f} ms vs {target}: {verdict}")


if __name__ == "__main__":
    main()
