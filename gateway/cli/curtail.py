"""`hashinsight curtail plan | backtest`: thin shells over gateway.curtail (the library does the work).

`curtail_app` is the group; other modules add `show | apply | override` to it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from gateway.cli.common import fail
from gateway.curtail.backtest import (
    BacktestConfig,
    BacktestResult,
    auto_cp_windows,
    fleet_classes,
    run_backtest,
)
from gateway.curtail.economics import Economics
from gateway.curtail.forecast import fill_prices
from gateway.curtail.plan_model import MinerClass, Plan
from gateway.curtail.planner_model import PlanRequest, Window
from gateway.curtail.planner_solve import make_plan
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.energy.prices import read_local_grid
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.tariffs import PriceSeries

curtail_app = typer.Typer(
    help="Curtailment: plan miner on/off counts against power prices, and backtest the planner.",
    no_args_is_help=True,
)

DEFAULT_FLEET = "S21=250,S19j Pro=250,M30S+=250,S19 XP=250"

PricesArg = Annotated[
    Path,
    typer.Option(
        "--prices",
        help="Price CSV on a naive local 15-minute grid: `interval_start_local` plus price columns in $/MWh "
        "(e.g. the ERCOT HB_SOUTH file).",
        exists=True,
        dir_okay=False,
    ),
]
ColumnOpt = Annotated[str, typer.Option(help="Real-time price column ($/MWh) to plan and settle on.")]
DamOpt = Annotated[
    str,
    typer.Option(
        "--day-ahead-column",
        help="Day-ahead price column ($/MWh): picks each month's 4CP day (as an operator would, ahead of "
        "time) and feeds `--forecast dam`. `none` to use the real-time column instead.",
    ),
]
TzOpt = Annotated[str, typer.Option(help="IANA zone of the file's wall-clock times.")]
FleetOpt = Annotated[
    str,
    typer.Option(help="MODEL=COUNT,...; TH/s and W come from firmware_profiles/*.toml (normal mode)."),
]
HashpriceOpt = Annotated[str, typer.Option(help="Hashprice, USD per TH/s per day.")]
PoolFeeOpt = Annotated[str, typer.Option(help="Pool fee as a fraction (0.02 = 2 %).")]
PueOpt = Annotated[str, typer.Option(help="Power usage effectiveness (>= 1) applied to miner energy.")]
AdderOpt = Annotated[str, typer.Option(help="Per-kWh adders on top of the market price, $/kWh.")]
RampOpt = Annotated[float, typer.Option("--ramp-kw", help="Most the site load may change per 15 min, kW.")]
MinOnOpt = Annotated[int, typer.Option(min=1, help="Minimum on-time, in 15-minute periods.")]
MinOffOpt = Annotated[int, typer.Option(min=1, help="Minimum off-time, in 15-minute periods.")]
CapOpt = Annotated[float | None, typer.Option("--site-cap-kw", help="Site kW cap (none by default).")]
CpChargeOpt = Annotated[
    str,
    typer.Option(
        "--cp-charge",
        help="4CP charge, $/kW on the highest load in each window (default 15: ~$60/kW-year of "
        "transmission split over four peaks). 0 disables the windows.",
    ),
]
CpHoursOpt = Annotated[str, typer.Option("--cp-hours", help="4CP window, local hours START-END.")]
CpDayOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cp-day", help="A 4CP day YYYY-MM-DD (repeat); default: one per month, chosen automatically."
    ),
]
SolverOpt = Annotated[str, typer.Option(help="highs or cbc.")]
TimeLimitOpt = Annotated[
    float, typer.Option(help="Solver time limit per plan, seconds (hard kill 5 s later).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=name) from None
    if not value.is_finite():
        raise typer.BadParameter(f"{text!r} is not a finite number", param_hint=name)
    return value


def _fleet(text: str) -> tuple[MinerClass, ...]:
    counts: dict[str, int] = {}
    for part in text.split(","):
        model, sep, count = part.partition("=")
        if not sep or not count.strip().isdigit() or not model.strip():
            raise typer.BadParameter(f"{part!r} is not MODEL=COUNT", param_hint="--fleet")
        counts[model.strip()] = int(count)
    try:
        return fleet_classes(load_profiles(), counts)
    except (KeyError, ProfileError) as err:
        fail(str(err).strip("'\""), 2)


def _series(path: Path, column: str, tz: str) -> PriceSeries:
    try:
        with path.open("rb") as stream:
            return read_local_grid(stream, column=column, tz=tz)
    except ImportRefused as err:
        fail(f"{path}: {err}")
    except (OSError, ValueError) as err:
        fail(f"{path}: {err}")


def _hours(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not (sep and start.isdigit() and end.isdigit() and 0 <= int(start) < int(end) <= 24):
        raise typer.BadParameter(f"{text!r} is not START-END hours like 16-18", param_hint="--cp-hours")
    return int(start), int(end)


def _windows(
    days: list[str] | None, hours: tuple[int, int], charge: Decimal, tz: str, picker: PriceSeries
) -> tuple[Window, ...]:
    if charge <= 0:
        return ()
    if not days:
        return auto_cp_windows(picker, tz=tz, hours=hours, charge_per_kw=charge)
    zone = ZoneInfo(tz)
    out = []
    for text in days:
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=zone)
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not YYYY-MM-DD", param_hint="--cp-day") from None
        start, end = day.replace(hour=hours[0]), day.replace(hour=hours[1] % 24)
        end_ts = int(end.timestamp()) if hours[1] < 24 else int(day.timestamp()) + 86_400
        out.append(Window(start=int(start.timestamp()), end=end_ts, kind="4cp", charge_per_kw=charge))
    return tuple(out)


def _economics(pool_fee: str, pue: str, adder: str) -> Economics:
    try:
        return Economics(
            pool_fee=_decimal(pool_fee, "--pool-fee"),
            pue=_decimal(pue, "--pue"),
            adder_per_kwh=_decimal(adder, "--adder"),
        )
    except ValueError as err:
        fail(str(err), 2)


def _table(result: BacktestResult) -> str:
    rows: list[tuple[str, ...]] = [("", "ours", "strike_rule", "always_on")]
    strategies = (result.ours, result.strike_rule, result.always_on)
    for label, attr in (
        ("net margin, USD", "net_margin_usd"),
        ("mining value, USD", "mining_value_usd"),
        ("energy cost, USD", "energy_cost_usd"),
        ("4CP/demand charges, USD", "peak_charges_usd"),
        ("energy, kWh", "energy_kwh"),
        ("curtailed miner-hours", "curtailed_miner_hours"),
        ("violations", "violations"),
    ):
        rows.append((label, *(f"{getattr(s, attr):,}" for s in strategies)))
    rows.append(
        (
            "violations by kind",
            *(
                ", ".join(f"{k} {v}" for k, v in sorted(s.violations_by_kind.items())) or "-"
                for s in strategies
            ),
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    )


@curtail_app.command("backtest")
def backtest_command(
    prices: PricesArg,
    column: ColumnOpt = "HB_SOUTH_RTM",
    day_ahead_column: DamOpt = "HB_SOUTH_DAM",
    tz: TzOpt = "America/Chicago",
    fleet: FleetOpt = DEFAULT_FLEET,
    hashprice: HashpriceOpt = "0.045",
    pool_fee: PoolFeeOpt = "0",
    pue: PueOpt = "1.0",
    adder: AdderOpt = "0",
    ramp_kw: RampOpt = 800.0,
    min_on: MinOnOpt = 4,
    min_off: MinOffOpt = 4,
    site_cap_kw: CapOpt = None,
    cp_charge: CpChargeOpt = "15",
    cp_hours: CpHoursOpt = "16-18",
    cp_day: CpDayOpt = None,
    forecast: Annotated[
        str, typer.Option(help="profile (median same time of day, last 7 days) | dam | perfect (hindsight).")
    ] = "profile",
    replan_every: Annotated[int, typer.Option(min=1, help="Re-plan at least every N periods.")] = 8,
    horizon: Annotated[int, typer.Option(min=1, max=672, help="Planning horizon, 15-minute periods.")] = 96,
    days: Annotated[int | None, typer.Option(min=1, help="Only the first N days of the file.")] = None,
    solver: SolverOpt = "highs",
    time_limit: TimeLimitOpt = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the rolling planner over a historical price file; compare with the strike-price rule and always-on.

    Each strategy is settled on the actual prices and checked against the same limits (ramp, minimum
    on/off, caps); the planner knows only the current period's price and forecasts the rest. Defaults: a
    1,000-miner fleet (250 each of S21, S19j Pro, M30S+, S19 XP), hashprice 0.045 $/TH/day, ramp 800 kW
    per 15 min, minimum on/off 1 h, a 16:00-18:00 4CP window each month at $15/kW.

    Example: hashinsight curtail backtest --prices ercot_hb_south_15min_2024-06_2024-09.csv --json
    """
    if forecast not in ("profile", "dam", "perfect"):
        fail(f"--forecast must be profile, dam or perfect, not {forecast!r}", 2)
    if solver not in ("highs", "cbc"):
        fail(f"--solver must be highs or cbc, not {solver!r}", 2)
    classes = _fleet(fleet)
    series = _series(prices, column, tz)
    dam = None if day_ahead_column.lower() == "none" else _series(prices, day_ahead_column, tz)
    if forecast == "dam" and dam is None:
        fail("--forecast dam needs --day-ahead-column", 2)
    if days is not None:
        n = days * 96
        series = PriceSeries(
            interval_s=series.interval_s,
            starts=series.starts[:n],
            prices_per_kwh=series.prices_per_kwh[:n],
            source=series.source,
        )
    cfg = BacktestConfig(
        classes=classes,
        hashprice=_decimal(hashprice, "--hashprice"),
        economics=_economics(pool_fee, pue, adder),
        ramp_kw_per_period=ramp_kw,
        min_on_periods=min_on,
        min_off_periods=min_off,
        site_cap_kw=site_cap_kw,
        windows=_windows(cp_day, _hours(cp_hours), _decimal(cp_charge, "--cp-charge"), tz, dam or series),
        horizon=horizon,
        replan_every=replan_every,
        solver=solver,
        time_limit_s=time_limit,
        forecast=forecast,
    )
    started = time.monotonic()
    try:
        result = run_backtest(series, cfg, day_ahead=dam)
    except ValueError as err:
        fail(str(err))
    wall_s = time.monotonic() - started
    solves = {
        "plans": result.solves,
        "fallbacks": result.fallbacks,
        "fallback_reasons": dict(result.fallback_reasons),
        "median_s": round(result.solve_median_s, 4),
        "max_s": round(result.solve_max_s, 4),
        "wall_s": round(wall_s, 1),
    }
    if as_json:
        payload: dict[str, Any] = {
            "ours": result.ours.as_json() | {"solves": solves},
            "strike_rule": result.strike_rule.as_json(),
            "always_on": result.always_on.as_json(),
            "periods": result.periods,
            "cp_windows": [
                {"start": w.start, "end": w.end, "charge_per_kw": str(w.charge_per_kw)} for w in cfg.windows
            ],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(
        f"{result.periods} periods of {series.source}; fleet {fleet}; hashprice {cfg.hashprice} $/TH/day"
    )
    zone = ZoneInfo(tz)
    for w in cfg.windows:
        begin, end = datetime.fromtimestamp(w.start, zone), datetime.fromtimestamp(w.end, zone)
        typer.echo(f"4CP window {begin:%Y-%m-%d %H:%M}-{end:%H:%M} at ${w.charge_per_kw}/kW")
    typer.echo(_table(result))
    typer.echo(
        f"solves: {result.solves} plans, median {result.solve_median_s:.3f} s, "
        f"max {result.solve_max_s:.3f} s, "
        f"fallbacks {result.fallbacks}; wall {wall_s:.0f} s"
    )


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "created_at": plan.created_at,
        "status": plan.status,
        "solver": plan.solver,
        "solve_s": round(plan.solve_s, 4),
        "objective_usd": None if plan.objective_usd is None else str(plan.objective_usd),
        "lp_bound_usd": None if plan.lp_bound_usd is None else str(plan.lp_bound_usd),
        "explanation": plan.explanation,
        "periods": [
            {
                "start": p.start,
                "on": dict(p.on_by_class),
                "price_per_kwh": str(p.price_per_kwh),
                "forecast": p.forecast,
                "reason": p.reason,
            }
            for p in plan.periods
        ],
    }


@curtail_app.command("plan")
def plan_command(
    prices: PricesArg,
    at: Annotated[
        str,
        typer.Option(
            help="Plan from this local wall-clock time, YYYY-MM-DD HH:MM (prices after it are forecast)."
        ),
    ],
    column: ColumnOpt = "HB_SOUTH_RTM",
    tz: TzOpt = "America/Chicago",
    fleet: FleetOpt = DEFAULT_FLEET,
    hashprice: HashpriceOpt = "0.045",
    pool_fee: PoolFeeOpt = "0",
    pue: PueOpt = "1.0",
    adder: AdderOpt = "0",
    ramp_kw: RampOpt = 800.0,
    min_on: MinOnOpt = 4,
    min_off: MinOffOpt = 4,
    site_cap_kw: CapOpt = None,
    cp_charge: CpChargeOpt = "15",
    cp_hours: CpHoursOpt = "16-18",
    cp_day: CpDayOpt = None,
    solver: SolverOpt = "highs",
    time_limit: TimeLimitOpt = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Plan the next 24 h (96 x 15 min) from `--at`, all miners on at the start; print counts and reasons.

    Prices up to `--at` are taken as known, later ones are forecast (median of the same time of day over
    the last 7 days). Example: hashinsight curtail plan --prices ercot.csv --at "2024-08-20 12:00"
    """
    if solver not in ("highs", "cbc"):
        fail(f"--solver must be highs or cbc, not {solver!r}", 2)
    zone = ZoneInfo(tz)
    try:
        start = int(datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp())
    except ValueError:
        fail(f"--at {at!r} is not YYYY-MM-DD HH:MM", 2)
    start -= start % 900
    classes = _fleet(fleet)
    series = _series(prices, column, tz)
    known = dict(zip(series.starts, series.prices_per_kwh, strict=True))
    if start not in known:
        fail(f"--at {at} is outside the price file (or falls in a gap)")
    starts = tuple(start + 900 * t for t in range(96))
    price, flags = fill_prices(known=known, starts=starts, now=start)
    req = PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=price,
        forecast=flags,
        hashprice=(_decimal(hashprice, "--hashprice"),) * 96,
        economics=_economics(pool_fee, pue, adder),
        site_cap_kw=site_cap_kw,
        windows=_windows(cp_day, _hours(cp_hours), _decimal(cp_charge, "--cp-charge"), tz, series),
        ramp_kw_per_period=ramp_kw,
        min_on_periods=min_on,
        min_off_periods=min_off,
        initial_on={c.key: c.count for c in classes},
    )
    plan = make_plan(req, now=start, solver=solver, time_limit_s=time_limit)
    if as_json:
        typer.echo(json.dumps(_plan_json(plan), indent=2))
        return
    typer.echo(f"{plan.status} ({plan.solver}, {plan.solve_s:.2f} s): {plan.explanation}")
    keys = [c.key.split(":")[0] for c in classes]
    typer.echo("local time        price $/kWh  " + "  ".join(f"{k:>8}" for k in keys) + "  reason")
    for p in plan.periods:
        counts = "  ".join(f"{p.on_by_class[c.key]:>8}" for c in classes)
        mark = "f" if p.forecast else " "
        local = datetime.fromtimestamp(p.start, zone)
        typer.echo(f"{local:%Y-%m-%d %H:%M}  {p.price_per_kwh:>10.4f}{mark}  {counts}  {p.reason}")


# `show | apply | override` live beside the executor's code; they join this group here.
from gateway.cli.curtail_ops import register  # noqa: E402

register(curtail_app)
from gateway.cli.curtail_savings import register as register_savings  # noqa: E402

register_savings(curtail_app)
