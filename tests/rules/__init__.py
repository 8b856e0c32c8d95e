"""Builders shared by the rules tests: samples, inputs and a few cycles of baselines + engine.

Figures are an Antminer S19 Pro's (110 TH/s, 3250 W; low mode 88 TH/s at 2600 W: the model's own
efficiency) so every expectation can be checked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.devices.model import BoardReading, MinerStatus, Mode, PoolReading, Sample, Source
from gateway.rules.baselines import BaselineParams, Baselines, Scores
from gateway.rules.catalog import RuleTable
from gateway.rules.engine import evaluate
from gateway.rules.evaluation import Evaluation
from gateway.rules.findings import FindingState
from gateway.rules.inputs import FleetFrame, IntendedState, MinerInput, Nominal

T0 = 1_700_000_000
INTERVAL = 30
POOL = "stratum+tcp://btc.example-pool.com:3333"
S19 = Nominal(ths=(88.0, 110.0, math.nan), watts=(2600.0, 3250.0, math.nan), sleep_w=15.0, boards=3, fans=4)


def sample(
    miner_id: str = "m1",
    ts: int = T0,
    *,
    rate: float | None = 110.0,
    power: float | None = 3250.0,
    temp: float | None = 65.0,
    measured: bool = True,
    status: MinerStatus = MinerStatus.MINING,
    board_rates: Sequence[float | None] | None = None,
    fans: tuple[int, ...] = (6000, 6000, 6000, 6000),
    accepted: int | None = None,
    pool_url: str | None = POOL,
    mode: Mode | None = None,
    uptime_s: int | None = 86_400,
    **extra: Any,
) -> Sample:
    """One poll. Boards split `rate` evenly unless `board_rates` says otherwise; shares move every poll
    unless `accepted` pins the counter."""
    if board_rates is None:
        board_rates = [rate / 3 if rate is not None else None] * 3
    boards = tuple(
        BoardReading(slot=i, hashrate_ths=r, temp_chip_c=temp, temp_board_c=temp - 8 if temp else None)
        for i, r in enumerate(board_rates)
    )
    return Sample(
        miner_id=miner_id,
        ts=ts,
        status=status,
        hashrate_ths=rate,
        power_w=power,
        power_source=Source.MEASURED if measured else Source.ESTIMATED,
        boards=boards,
        fans_rpm=fans,
        accepted=(ts - T0) // 3 if accepted is None else accepted,
        pool_url=pool_url,
        pools=(PoolReading(url=pool_url, active=True),) if pool_url else (),
        mode=mode,
        uptime_s=uptime_s,
        **extra,
    )


def inp(
    s: Sample | None,
    *,
    miner_id: str | None = None,
    availability: str = "ok",
    model_key: str | None = "antminer_s19_pro",
    nominal: Nominal | None = S19,
    intended: IntendedState | None = None,
) -> MinerInput:
    mid = miner_id or (s.miner_id if s is not None else "m1")
    return MinerInput(
        miner_id=mid,
        availability=availability,
        sample=s,
        model_key=model_key,
        nominal=nominal,
        intended_state=intended,
    )


def cycle(
    baselines: Baselines, inputs: Sequence[MinerInput], table: RuleTable | None = None, now: int | None = None
) -> tuple[Scores, Evaluation]:
    frame = FleetFrame.from_inputs(inputs)
    scores = baselines.observe(frame)
    now = now if now is not None else max((i.sample.ts for i in inputs if i.sample), default=T0)
    return scores, evaluate(frame, scores, table or RuleTable(), now)


def run(
    series: Iterable[Sequence[MinerInput]],
    table: RuleTable | None = None,
    params: BaselineParams | None = None,
) -> list[tuple[Scores, Evaluation]]:
    """Every cycle's scores and evaluation for a sequence of fleets, from fresh baselines."""
    baselines = Baselines("site-1", params)
    return [cycle(baselines, inputs, table) for inputs in series]


def steady(n: int, start: int = 0, **kwargs: Any) -> list[list[MinerInput]]:
    """`n` cycles of one healthy miner (noise-free unless the caller varies it)."""
    return [[inp(sample(ts=T0 + (start + c) * INTERVAL, **kwargs))] for c in range(n)]


def states_of(readings: Sequence[dict[str, Any]], rule_id: str, **inp_kwargs: Any) -> list[FindingState]:
    """Rule `rule_id`'s state for miner m1 in each cycle, one cycle per reading (sample kwargs)."""
    series = [[inp(sample(ts=T0 + c * INTERVAL, **r), **inp_kwargs)] for c, r in enumerate(readings)]
    return [evaluation.state_of("m1", rule_id) for _, evaluation in run(series)]
