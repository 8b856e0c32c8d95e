"""`hashinsight curtail plan | backtest`: thin shells over gateway.curtail (the library does the work).

`curtail_app` is the group; `backtest` lives in cli.curtail_backtest, options shared by both in
cli.curtail_args; other modules add `show | apply | override | savings` to it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from gateway.cli.common import fail
from gateway.cli.curtail_args import (
    DEFAULT_FLEET,
    AdderOpt,
    CapOpt,
    ColumnOpt,
    CpChargeOpt,
    CpDayOpt,
    CpHoursOpt,
    FleetOpt,
    HashpriceOpt,
    JsonOpt,
    MinOffOpt,
    MinOnOpt,
    PoolFeeOpt,
    PricesArg,
    PueOpt,
    RampOpt,
    SolverOpt,
    TimeLimitOpt,
    TzOpt,
    cp_setup,
    decimal_arg,
    economics_arg,
    fleet_arg,
    has_column,
    hours_arg,
    read_series,
)
from gateway.cli.curtail_backtest import backtest_command
from gateway.curtail.backtest_cp import known_alerts
from gateway.curtail.forecast import fill_prices
from gateway.curtail.plan_model import Plan
from gateway.curtail.planner_model import PlanRequest
from gateway.curtail.planner_solve import make_plan

curtail_app = typer.Typer(
    help="Curtailment: plan miner on/off counts against power prices, and backtest the planner.",
    no_args_is_help=True,
)
curtail_app.command("backtest")(backtest_command)


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

    Prices up to `--at` are taken as known, later ones are forecast: the file's HB_SOUTH_DAM day-ahead
    price once published (13:30 local the day before), else the median of the same local time over the
    last 7 days. 4CP windows are only the alerts known at `--at` (see `backtest --help`) or `--cp-day`.
    Example: hashinsight curtail plan --prices ercot.csv --at "2024-08-20 12:00"
    """
    if solver not in ("highs", "cbc"):
        fail(f"--solver must be highs or cbc, not {solver!r}", 2)
    zone = ZoneInfo(tz)
    try:
        start = int(datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp())
    except ValueError:
        fail(f"--at {at!r} is not YYYY-MM-DD HH:MM", 2)
    start -= start % 900
    classes = fleet_arg(fleet)
    series = read_series(prices, column, tz)
    known = dict(zip(series.starts, series.prices_per_kwh, strict=True))
    if start not in known:
        fail(f"--at {at} is outside the price file (or falls in a gap)")
    starts = tuple(start + 900 * t for t in range(96))
    dam = read_series(prices, "HB_SOUTH_DAM", tz) if has_column(prices, "HB_SOUTH_DAM") else None
    day_ahead = dict(zip(dam.starts, dam.prices_per_kwh, strict=True)) if dam is not None else None
    price, flags = fill_prices(known=known, starts=starts, now=start, tz=zone, day_ahead=day_ahead)
    _, alerts = cp_setup(
        cp_day, hours_arg(cp_hours), decimal_arg(cp_charge, "--cp-charge"), tz, dam or series, dam
    )
    req = PlanRequest(
        classes=classes,
        start=start,
        period_s=900,
        prices_per_kwh=price,
        forecast=flags,
        hashprice=(decimal_arg(hashprice, "--hashprice"),) * 96,
        economics=economics_arg(pool_fee, pue, adder),
        site_cap_kw=site_cap_kw,
        windows=known_alerts(alerts, now=start, start=start, end=start + 96 * 900),
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
