"""What curtailment saved, built from what the gateway recorded: the adapter into `savings.attribute`.

`savings.py` turns `CurtailedInterval`s into money; this module makes those intervals from the record:

- curtailed time comes from the executor's *verified* actions in state.db (`curtail_actions`): a miner is
  curtailed from a verified sleep until its next verified wake (or the period end). Only verified rows
  count, because an issued or failed sleep may have left the miner hashing, and a credit must rest on
  what was confirmed. The latest sleep names the strategy (its event's source: plan, override,
  fail_policy, manual), so the state at any instant depends only on the latest action before it: a
  period split in two gives the same intervals as the whole.
- the time is clipped to `[start, end)` and split on the 15-minute grid of `energy_15m`;
- actual energy is the interval's metered joules, pro rata over the curtailed seconds when the miner
  was curtailed for only part of it. The pro-rata share includes the mining part's draw, so it can only
  *overstate* the actual draw and understate the saving, the safe side for a credit. Rounded up, too;
- the reference watts and TH/s are the miner's firmware profile in normal mode;
- the baseline is the miner's own average power in the same UTC hour over the 7 days before the
  interval's day, from 5-minute buckets in which it mined throughout (`samples_5m.mining_s = 300`).
  UTC, not local, hours: a miner's draw follows ambient temperature, i.e. the sun, which DST does not
  move. `samples_daily` is not used: a daily average mixes in the very sleep being measured.
- the price is the tariff's per-interval price (`tariff_prices.energy_price_fn`).

Rows that do not fit are handled and counted (`Anomalies`), never raised: a wake without a sleep is
ignored, actions whose time runs backwards against their insertion order are taken in time order, a
miner without a known profile or an interval without metered energy gives no saving (no credit without
evidence), and an interval without a price is priced at 0.

The pure core takes rows and returns data; the readers below it are the only I/O.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction

from gateway.curtail.savings import UNASSIGNED, CurtailedInterval
from gateway.devices.model import Mode
from gateway.devices.profiles import ProfileCatalog
from gateway.energy.settlement_model import Assignment, Credit
from gateway.energy.tariffs import TariffError
from gateway.energy.units import J_PER_KWH, display, kwh, round_money

GRID_S = 900
DAY_S = 86_400
HOUR_S = 3_600
BASELINE_DAYS = 7
FULL_BUCKET_S = 300  # samples_5m.mining_s of a bucket mined throughout

PriceFn = Callable[[int], Decimal]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRow:
    """A verified sleep or wake. `strategy` is its event's source, else the action's own reason."""

    id: int
    miner_id: str
    ts: int
    action: str
    strategy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """`miner_id` curtailed over `[start, end)` (already clipped to the period)."""

    miner_id: str
    start: int
    end: int
    strategy: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyRow:
    miner_id: str
    interval_start: int
    joules: int
    covered_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class HourHistory:
    """Sum of the 5-minute average watts of one miner's fully-mining buckets in one UTC day and hour."""

    miner_id: str
    day: int  # UTC day number: ts // 86,400
    hour: int  # 0-23, UTC
    power_sum_w: float
    buckets: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MinerFigures:
    """The profile's normal-mode figures: what the miner would have drawn and hashed."""

    profile_w: float
    ths: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Anomalies:
    """What did not fit, counted. Action counts are rows inside the period; the rest are 15-minute
    pieces of curtailed time that gave no saving (or no price)."""

    wake_without_sleep: int = 0
    repeat_sleep: int = 0  # a sleep while already asleep (drift re-dispatch): it takes over the strategy
    out_of_order: int = 0  # a row whose ts is earlier than a row inserted before it
    malformed: int = 0  # verified sleep/wake rows the reader could not use (ts not an integer)
    unknown_profile: int = 0
    no_energy: int = 0
    unpriced: int = 0
    unknown_profile_miners: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, int | list[str]]:
        return {**asdict(self), "unknown_profile_miners": list(self.unknown_profile_miners)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SavingsInput:
    intervals: tuple[CurtailedInterval, ...]
    spans: tuple[Span, ...]
    anomalies: Anomalies = field(default_factory=Anomalies)


# --- pure core ------------------------------------------------------------------------------------------


def curtailed_spans(actions: Iterable[ActionRow], *, start: int, end: int) -> tuple[list[Span], Counter[str]]:
    """Curtailed spans per miner, clipped to `[start, end)`, and the action anomalies in the period.

    `actions` must hold, per miner, at least the latest action before `start` (the state at `start`)."""
    if end <= start:
        raise ValueError(f"empty period [{start}, {end})")
    counts: Counter[str] = Counter()
    by_miner: dict[str, list[ActionRow]] = defaultdict(list)
    for row in actions:
        by_miner[row.miner_id].append(row)
    spans: list[Span] = []

    def emit(miner_id: str, lo: int, hi: int, strategy: str) -> None:
        lo, hi = max(lo, start), min(hi, end)
        if lo < hi:
            spans.append(Span(miner_id=miner_id, start=lo, end=hi, strategy=strategy))

    for miner_id in sorted(by_miner):
        rows = by_miner[miner_id]
        latest: int | None = None
        for row in sorted(rows, key=lambda r: r.id):
            if latest is not None and row.ts < latest and start <= row.ts < end:
                counts["out_of_order"] += 1
            latest = row.ts if latest is None else max(latest, row.ts)
        asleep_since: int | None = None
        strategy = ""
        for row in sorted(rows, key=lambda r: (r.ts, r.id)):
            if row.ts >= end:
                break
            in_period = row.ts >= start
            if row.action == "sleep":
                if asleep_since is not None:
                    counts["repeat_sleep"] += in_period
                    emit(miner_id, asleep_since, row.ts, strategy)
                asleep_since, strategy = row.ts, row.strategy
            elif row.action == "wake":
                if asleep_since is None:
                    counts["wake_without_sleep"] += in_period
                    continue
                emit(miner_id, asleep_since, row.ts, strategy)
                asleep_since = None
        if asleep_since is not None:
            emit(miner_id, asleep_since, end, strategy)
    return spans, counts


def grid_pieces(span: Span) -> Iterator[tuple[int, int]]:
    """(interval_start, curtailed seconds) of `span` on the 15-minute grid."""
    t = span.start - span.start % GRID_S
    while t < span.end:
        yield t, min(span.end, t + GRID_S) - max(span.start, t)
        t += GRID_S


def baseline_lookup(history: Iterable[HourHistory]) -> Callable[[str, int], float | None]:
    """Same-UTC-hour average watts over the `BASELINE_DAYS` days before an interval's day, or None."""
    table: dict[tuple[str, int, int], tuple[float, int]] = {}
    for h in history:
        if h.buckets > 0:
            total, n = table.get((h.miner_id, h.day, h.hour), (0.0, 0))
            table[(h.miner_id, h.day, h.hour)] = (total + h.power_sum_w, n + h.buckets)

    @functools.cache
    def by_hour(miner_id: str, day: int, hour: int) -> float | None:
        total, n = 0.0, 0
        for d in range(day - BASELINE_DAYS, day):
            s, k = table.get((miner_id, d, hour), (0.0, 0))
            total, n = total + s, n + k
        return max(total / n, 0.0) if n else None

    def baseline_w(miner_id: str, interval_start: int) -> float | None:
        return by_hour(miner_id, interval_start // DAY_S, interval_start % DAY_S // HOUR_S)

    return baseline_w


def build_intervals(
    *,
    actions: Iterable[ActionRow],
    energy: Iterable[EnergyRow],
    history: Iterable[HourHistory],
    figures: Mapping[str, MinerFigures],
    price_fn: PriceFn | None,
    start: int,
    end: int,
    malformed: int = 0,
) -> SavingsInput:
    """The `CurtailedInterval`s of `[start, end)` from the recorded rows, with what did not fit counted."""
    spans, counts = curtailed_spans(actions, start=start, end=end)
    metered = {(e.miner_id, e.interval_start): e for e in energy}
    baseline_w = baseline_lookup(history)
    unknown: set[str] = set()
    prices: dict[int, Decimal | None] = {}
    out: list[CurtailedInterval] = []
    for span in spans:
        spec = figures.get(span.miner_id)
        for interval_start, seconds in grid_pieces(span):
            row = metered.get((span.miner_id, interval_start))
            if spec is None:
                unknown.add(span.miner_id)
                counts["unknown_profile"] += 1
                continue
            if row is None or row.covered_s <= 0 or row.joules < 0:
                counts["no_energy"] += 1
                continue
            if interval_start not in prices:
                prices[interval_start] = _price(price_fn, interval_start)
            price = prices[interval_start]
            counts["unpriced"] += price is None
            out.append(
                CurtailedInterval(
                    miner_id=span.miner_id,
                    interval_start=interval_start,
                    curtailed_s=seconds,
                    actual_j=-(-row.joules * seconds // row.covered_s),  # rounded up
                    profile_w=spec.profile_w,
                    ths=spec.ths,
                    price_per_kwh=Decimal(0) if price is None else price,
                    strategy=span.strategy,
                    baseline_w=baseline_w(span.miner_id, interval_start),
                )
            )
    anomalies = Anomalies(**counts, malformed=malformed, unknown_profile_miners=tuple(sorted(unknown)))
    return SavingsInput(intervals=tuple(out), spans=tuple(spans), anomalies=anomalies)


def _price(price_fn: PriceFn | None, ts: int) -> Decimal | None:
    if price_fn is None:
        return None
    try:
        return price_fn(ts)
    except TariffError:  # no tariff in force, or no market price for the interval
        return None


def figures_for(profile_keys: Mapping[str, str | None], catalog: ProfileCatalog) -> dict[str, MinerFigures]:
    """Normal-mode figures per miner; miners without a (known) profile key are left out."""
    known = {p.key: p for p in catalog}
    out = {}
    for miner_id, key in profile_keys.items():
        profile = known.get(key) if key else None
        if profile is not None:
            spec = profile.modes[Mode.NORMAL]
            out[miner_id] = MinerFigures(profile_w=spec.power_w, ths=spec.hashrate_ths)
    return out


def owner_lookup(assignments: Sequence[Assignment]) -> Callable[[str, int], str]:
    """The owner of a miner at an instant: the rule `savings.attribute` applies at each interval's
    start (first matching assignment), indexed by miner so a month of a large fleet stays linear."""
    by_miner: dict[str, list[Assignment]] = defaultdict(list)
    for a in assignments:
        by_miner[a.miner_id].append(a)

    def owner(miner_id: str, ts: int) -> str:
        for a in by_miner.get(miner_id, ()):
            if a.start <= ts and (a.end is None or ts < a.end):
                return a.customer_id
        return UNASSIGNED

    return owner


def _exact(value: float | Decimal) -> Fraction:
    return Fraction(value) if isinstance(value, Decimal) else Fraction(Decimal(repr(float(value))))


def credits_from_intervals(
    intervals: Iterable[CurtailedInterval],
    *,
    assignments: Sequence[Assignment],
    credit_per_kwh: Decimal | None,
    label: str = "Curtailment credit",
) -> tuple[Credit, ...]:
    """One credit per customer (the site's own miners get none) on the conservative measure.

    With `credit_per_kwh` the credit is the saved energy at that rate; otherwise the saved energy cost as
    a lump, summed exactly and rounded once. Totals at or below zero give no line; energy is rounded down,
    so a credit never exceeds the saving."""
    owner = owner_lookup(assignments)
    groups: dict[tuple[str, float, Decimal], list[int]] = {}  # integer sums first: Fractions are slow
    for row in intervals:
        customer = owner(row.miner_id, row.interval_start)
        if customer != UNASSIGNED:
            sums = groups.setdefault((customer, row.profile_w, row.price_per_kwh), [0, 0])
            sums[0] += row.curtailed_s
            sums[1] += row.actual_j
    energy: dict[str, Fraction] = defaultdict(Fraction)
    money: dict[str, Fraction] = defaultdict(Fraction)
    for (customer, profile_w, price), (seconds, actual_j) in groups.items():
        saved_j = _exact(profile_w) * seconds - actual_j
        energy[customer] += saved_j
        money[customer] += saved_j * _exact(price) / J_PER_KWH
    credits = []
    for customer in sorted(energy):
        total_j = math.floor(energy[customer])
        if total_j <= 0:
            continue
        saved_kwh = display(kwh(total_j), 3)
        measure = "conservative: profile watts x curtailed time - metered"
        if credit_per_kwh is not None:
            description = f"{label}: {saved_kwh} kWh saved at {credit_per_kwh}/kWh ({measure})"
            credits.append(
                Credit(
                    customer_id=customer, description=description, energy_j=total_j, per_kwh=credit_per_kwh
                )
            )
            continue
        amount = round_money(money[customer])
        if amount > 0:
            description = f"{label}: {saved_kwh} kWh saved, energy cost avoided ({measure})"
            credits.append(Credit(customer_id=customer, description=description, amount=amount))
    return tuple(credits)
