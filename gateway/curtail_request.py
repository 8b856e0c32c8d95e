"""The running gateway's planning problem, built from its inventory, settings, prices, owners and tariff.

Pure: every function takes data (and `now` where time matters) and returns data; the service reads
state.db and DuckDB and hands the results in. Kept apart from `curtail_service` so the problem the
gateway poses can be tested exactly, without a running gateway.

Classes: one per firmware profile at the planned mode. A miner whose owner has a minimum-uptime
commitment (`[curtail] customer_min_uptime_pct`) goes into a class of its own profile *and* owner
(`<profile>|normal|<customer>`): the planner's uptime constraint is written over whole classes, so a
committed customer's miners must not share a class with anyone else's. Owners without a commitment keep
the shared classes, so a site that configures none plans exactly as before.

Demand: the planner charges `demand_charge_per_kw` on the load above `demand_peak_kw_so_far`. The rate is
the flat monthly demand rate of the tariff in force at `now` for the site's local month, at the tier the
month's peak so far sits in (the marginal rate of raising it). TOU demand is not modelled (its peaks are
per TOU period, the planner has one peak); it is reported in the plan's explanation. Two approximations:
the planner's 15-minute load stands for the tariff's demand interval
(a 30/60-minute average is never above its highest quarter), and the hours of a horizon that reach
into the next month are priced against this month's peak (the new month's starts at zero); the first
re-plan of the new month reads the new month.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gateway.config import CurtailSettings
from gateway.curtail.economics import Economics
from gateway.curtail.forecast import fill_prices
from gateway.curtail.plan_model import MinerClass
from gateway.curtail.planner_model import Customer, PlanRequest, Window
from gateway.devices.model import Mode
from gateway.devices.profiles import MinerProfile
from gateway.energy.contracts import month_containing, month_to_date
from gateway.energy.tariffs import PriceSeries, Tariff, TariffError, tariff_at
from gateway.energy.units import J_PER_KW_S, site_zone

PERIOD_S = 900  # prices come in whole 15-minute intervals, so the plan's periods are 15 minutes
HISTORY_S = 7 * 86_400  # the forecast looks at the same time of day over the last week
MODE = Mode.NORMAL  # the mode a running miner is planned at; other modes are a follow-up


def class_key(profile: MinerProfile, customer: str | None = None) -> str:
    """`<profile>|normal`, or `<profile>|normal|<customer>` for a customer with an uptime commitment."""
    base = f"{profile.key}|{MODE.value}"
    return base if customer is None else f"{base}|{customer}"


def committed_owners(owners: Mapping[str, str], commitments: Mapping[str, Decimal]) -> dict[str, str]:
    """miner -> customer, only for miners whose current owner has a minimum-uptime commitment."""
    return {miner: customer for miner, customer in owners.items() if customer in commitments}


def classes_of(
    profiles_by_miner: Mapping[str, MinerProfile], owner_of: Mapping[str, str] | None = None
) -> tuple[MinerClass, ...]:
    """One class per firmware profile (and committed owner) at the planned mode, counted over the miners."""
    owner_of = owner_of or {}
    keys = {m: class_key(p, owner_of.get(m)) for m, p in profiles_by_miner.items()}
    counts = Counter(keys.values())
    profile_of = {keys[m]: p for m, p in profiles_by_miner.items()}
    return tuple(
        MinerClass(
            key=key,
            model=profile_of[key].key,
            mode=MODE.value,
            count=counts[key],
            ths_per_miner=profile_of[key].mode(MODE).hashrate_ths,
            kw_per_miner=profile_of[key].mode(MODE).power_w / 1000,
        )
        for key in sorted(counts)
    )


def customers_of(
    profiles_by_miner: Mapping[str, MinerProfile],
    owner_of: Mapping[str, str],
    commitments: Mapping[str, Decimal],
) -> tuple[Customer, ...]:
    """The planner's customers: each committed owner's classes and its minimum uptime as a fraction.

    A configured customer that owns no profiled miner has nothing to plan and is left out."""
    keys: dict[str, set[str]] = {}
    for miner, customer in owner_of.items():
        profile = profiles_by_miner.get(miner)
        if profile is not None and customer in commitments:
            keys.setdefault(customer, set()).add(class_key(profile, customer))
    return tuple(
        Customer(
            key=customer, class_keys=tuple(sorted(keys[customer])), min_uptime=commitments[customer] / 100
        )
        for customer in sorted(keys)
    )


def known_prices(series: PriceSeries) -> dict[int, Decimal]:
    """Stored prices per 15-minute period start (an hourly price holds for its four quarters)."""
    known: dict[int, Decimal] = {}
    for start, price in zip(series.starts, series.prices_per_kwh, strict=True):
        for k in range(series.interval_s // PERIOD_S):
            known[start + k * PERIOD_S] = price
    return known


# --- demand -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Demand:
    """What the planner is told about demand charges; `note` says why the rate is what it is."""

    rate_per_kw: Decimal = Decimal(0)
    peak_kw_so_far: float = 0.0
    note: str = "no demand charge"


def peak_kw_so_far(records: Iterable[tuple[int, int]], *, now: int, tz: str, interval_s: int) -> float:
    """The month's highest average kW over one demand interval, from `(interval_start, joules)` records of
    the site's local month holding `now` (records outside it are ignored)."""
    mtd = month_to_date(records, month=month_containing(now, tz), now=now, interval_s=interval_s)
    return mtd.peak_interval_j / (interval_s * J_PER_KW_S)


def demand_rate(history: Sequence[Tariff], *, now: int, tz: str, peak_kw: float) -> tuple[Decimal, str]:
    """The $/kW of raising the month's peak above `peak_kw` under the tariff in force at `now`, and why.

    Tier limits are cumulative kW on the billing peak, so the marginal rate is the tier holding the peak."""
    if not history:
        return Decimal(0), "no tariff in force: no demand charge"
    try:
        tariff = tariff_at(history, now)
    except TariffError as err:
        return Decimal(0), f"demand not modelled: {err}"
    demand = tariff.demand
    notes: list[str] = []
    if demand.tou_schedule is not None:
        notes.append(f"tariff {tariff.name!r} has TOU demand charges, which the planner does not model")
    rate = Decimal(0)
    if demand.flat_periods:
        name = demand.flat_months[datetime.fromtimestamp(now, site_zone(tz)).month - 1]
        period = next((p for p in demand.flat_periods if p.name == name), None)
        if period is not None:
            peak = Decimal(str(peak_kw))
            tier = next((t for t in period.tiers if t.limit is None or peak < t.limit), period.tiers[-1])
            rate = tier.rate
            notes.insert(0, f"demand {rate} $/kW ({tariff.name!r} {period.name}) above the peak so far")
    if not notes:
        notes.append(f"tariff {tariff.name!r} has no demand charge this month")
    return rate, "; ".join(notes)


# --- the request --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One miner started (`delta` 1) or stopped (-1) at `ts`, in class `class_key`: what the executor
    actually did (its recorded, not failed, actions), the history minimum on/off times are counted from."""

    ts: int
    class_key: str
    delta: int


def _net_by_period(changes: Iterable[Change], key: str) -> dict[int, int]:
    net: dict[int, int] = {}
    for c in changes:
        if c.class_key == key:
            period = c.ts - c.ts % PERIOD_S
            net[period] = net.get(period, 0) + c.delta
    return net


def recent_counts(changes: Iterable[Change], start: int, key: str, back: int, sign: int) -> tuple[int, ...]:
    """Miners of `key` started (sign 1) or stopped (-1), net per period, in the `back` periods before
    `start`, oldest first (the planner's `recent_starts` / `recent_stops`).

    Taken from what happened, not from the previous plan: a plan does not record the state it started
    from, so its first period's change was lost on every re-plan (and a restart lost them all), which let
    a re-plan undo a stop made one period earlier."""
    if back <= 0:
        return ()
    net = _net_by_period(changes, key)
    # A change made in the current period, before a mid-period re-plan (a real price arrived), is already
    # in `initial_on`; it is counted as made in the period before, so the planner cannot undo it at once
    # (the constraint then holds one period short, and the executor's per-miner minimum times, in
    # seconds, hold the rest).
    net[start - PERIOD_S] = net.get(start - PERIOD_S, 0) + net.pop(start, 0)
    return tuple(max(0, sign * net.get(ts, 0)) for ts in range(start - back * PERIOD_S, start, PERIOD_S))


def build_request(
    *,
    cfg: CurtailSettings,
    classes: tuple[MinerClass, ...],
    known: Mapping[int, Decimal],
    start: int,
    initial_on: Mapping[str, int],
    changes: Sequence[Change] = (),
    customers: tuple[Customer, ...] = (),
    demand: Demand | None = None,
    tz: str = "UTC",
) -> PlanRequest:
    """The planning problem from `start` (a period boundary): stored prices where they exist (real-time or
    day-ahead), the documented same-time-of-day forecast elsewhere (`forecast.fill_prices`).

    `initial_on` is what is on now; `changes` the starts/stops the executor made recently (at least the
    longer of the minimum on/off times back, `curtail_inputs.recent_changes`)."""
    starts = tuple(start + t * PERIOD_S for t in range(cfg.horizon_periods))
    end = starts[-1] + PERIOD_S
    # Every stored price is information in hand, however far ahead it lies: `now` = the last start.
    prices, flags = fill_prices(known=known, starts=starts, now=starts[-1], tz=tz)
    windows = tuple(
        Window(
            start=int(a.timestamp()),
            end=int(b.timestamp()),
            kind="4cp",
            max_kw=cfg.cp_max_kw,
            charge_per_kw=cfg.cp_charge_per_kw,
        )
        for a, b in cfg.cp_windows
        if int(a.timestamp()) < end and int(b.timestamp()) > start
    )
    demand = demand or Demand()
    return PlanRequest(
        classes=classes,
        start=start,
        period_s=PERIOD_S,
        prices_per_kwh=prices,
        forecast=flags,
        hashprice=(cfg.hashprice_usd_per_th_day,) * len(starts),
        economics=Economics(pool_fee=cfg.pool_fee, pue=cfg.pue, adder_per_kwh=cfg.adder_per_kwh),
        site_cap_kw=cfg.site_cap_kw,
        windows=windows,
        customers=customers,
        ramp_kw_per_period=cfg.ramp_kw_per_period,
        min_on_periods=cfg.min_on_periods,
        min_off_periods=cfg.min_off_periods,
        demand_charge_per_kw=demand.rate_per_kw,
        demand_peak_kw_so_far=demand.peak_kw_so_far,
        initial_on={c.key: min(max(initial_on.get(c.key, 0), 0), c.count) for c in classes},
        recent_starts={
            c.key: recent_counts(changes, start, c.key, cfg.min_on_periods - 1, 1) for c in classes
        },
        recent_stops={
            c.key: recent_counts(changes, start, c.key, cfg.min_off_periods - 1, -1) for c in classes
        },
    )
