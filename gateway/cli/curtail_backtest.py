"""`hashinsight curtail backtest`: a thin shell over gateway.curtail.backtest (registered by cli.curtail)."""

from __future__ import annotations

import json
import time
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
    DamOpt,
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
    share_arg,
)
from gateway.curtail.backtest import BacktestConfig, BacktestResult, run_backtest
from gateway.curtail.planner_model import Window
from gateway.energy.tariffs import PriceSeries


def _table(result: BacktestResult) -> str:
    rows: list[tuple[str, ...]] = [("", "ours", "strike_rule", "always_on", "strike_rule_safe")]
    strategies = (result.ours, result.strike_rule, result.always_on, result.strike_rule_safe)
    for label, attr in (
        ("net margin, USD", "net_margin_usd"),
        ("margin before 4CP, USD", "margin_before_cp_usd"),
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
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    )


def _days(windows: tuple[Window, ...], tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    return [f"{datetime.fromtimestamp(w.start, zone):%Y-%m-%d}" for w in windows]


def backtest_command(
    prices: PricesArg,
    column: ColumnOpt = "HB_SOUTH_RTM",
    dam_column: DamOpt = None,
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
        str,
        typer.Option(
            help="auto (dam when there is a day-ahead column, else profile) | dam (day-ahead once published, "
            "else profile) | profile (median of the same local time, last 7 days) | perfect (hindsight: "
            "an upper bound, not a fair result)."
        ),
    ] = "auto",
    persist: Annotated[
        str,
        typer.Option(
            help="Share (0 to <1) of the current period's real-time surprise (actual minus forecast) the "
            "forecast carries into each next period, decaying geometrically (0.8: about half after 45 "
            "min). 0 turns it off."
        ),
    ] = "0.8",
    debias_days: Annotated[
        int,
        typer.Option(
            min=0,
            help="Correct day-ahead prices by their median error (actual minus day-ahead) at the same local "
            "time over the last N days; 0 turns it off.",
        ),
    ] = 0,
    replan_every: Annotated[int, typer.Option(min=1, help="Re-plan at least every N periods.")] = 8,
    horizon: Annotated[int, typer.Option(min=1, max=672, help="Planning horizon, 15-minute periods.")] = 96,
    days: Annotated[int | None, typer.Option(min=1, help="Only the first N days of the file.")] = None,
    solver: SolverOpt = "highs",
    time_limit: TimeLimitOpt = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the rolling planner over a historical price file; compare with the strike-price rule and always-on.

    Fair by construction: each strategy is settled on the actual (real-time) prices and checked against
    the same limits (ramp, minimum on/off, caps); nothing decides on data it could not have had. The
    planner knows the current period's actual price (as the strike rule does) and forecasts the rest:
    day-ahead prices once published (day D's at D-1 13:30 local), before that the median of the same
    local time over the last 7 days; plus a fading share of the current real-time surprise (`--persist`).

    4CP: the charge ($/kW on the load in the window) is assessed after the fact on each month's true peak,
    stood in for by the day with the highest day-ahead 16:00-18:00 price of the month. Nobody acts on
    that. Both the planner and the strike rule get the same alerts: a day is an alert day when its
    day-ahead 16:00-18:00 price (public at 13:30 the day before) is at or above the highest of the month
    so far. The rule curtails fully in alert windows; a true day without an alert is charged. `--cp-day`
    forces days known in advance instead. `strike_rule_safe` is the same rule held to the same ramp and
    minimum on/off limits (like for like); `margin before 4CP` is each margin with no 4CP charge.

    Defaults: a 1,000-miner fleet (250 each of S21, S19j Pro, M30S+, S19 XP), hashprice 0.045 $/TH/day,
    ramp 800 kW per 15 min, minimum on/off 1 h, 4CP at $15/kW.

    Example: hashinsight curtail backtest --prices ercot_hb_south_15min_2024-06_2024-09.csv --json
    """
    if forecast not in ("auto", "profile", "dam", "perfect"):
        fail(f"--forecast must be auto, profile, dam or perfect, not {forecast!r}", 2)
    if solver not in ("highs", "cbc"):
        fail(f"--solver must be highs or cbc, not {solver!r}", 2)
    classes = fleet_arg(fleet)
    series = read_series(prices, column, tz)
    if dam_column is None:
        dam_column = "HB_SOUTH_DAM" if has_column(prices, "HB_SOUTH_DAM") else "none"
    dam = None if dam_column.lower() == "none" else read_series(prices, dam_column, tz)
    if forecast == "dam" and dam is None:
        fail("--forecast dam needs a day-ahead column (--dam-column)", 2)
    if forecast == "auto":
        forecast = "dam" if dam is not None else "profile"
    if days is not None:
        n = days * 96
        series = PriceSeries(
            interval_s=series.interval_s,
            starts=series.starts[:n],
            prices_per_kwh=series.prices_per_kwh[:n],
            source=series.source,
        )
    charged, alerts = cp_setup(
        cp_day, hours_arg(cp_hours), decimal_arg(cp_charge, "--cp-charge"), tz, dam or series, dam
    )
    cfg = BacktestConfig(
        classes=classes,
        hashprice=decimal_arg(hashprice, "--hashprice"),
        economics=economics_arg(pool_fee, pue, adder),
        ramp_kw_per_period=ramp_kw,
        min_on_periods=min_on,
        min_off_periods=min_off,
        site_cap_kw=site_cap_kw,
        windows=charged,
        alerts=alerts,
        tz=tz,
        horizon=horizon,
        replan_every=replan_every,
        solver=solver,
        time_limit_s=time_limit,
        forecast=forecast,
        persist_decay=share_arg(persist),
        dam_debias_days=debias_days,
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
    true_days, alert_days = _days(result.charged_windows, tz), _days(result.alert_windows, tz)
    if as_json:
        payload: dict[str, Any] = {
            "ours": result.ours.as_json() | {"solves": solves},
            "strike_rule": result.strike_rule.as_json(),
            "always_on": result.always_on.as_json(),
            "strike_rule_safe": result.strike_rule_safe.as_json(),
            "periods": result.periods,
            "forecast": forecast,
            "day_ahead_column": None if dam is None else dam_column,
            "cp_windows": [
                {"start": w.start, "end": w.end, "charge_per_kw": str(w.charge_per_kw)}
                for w in result.charged_windows
            ],
            "cp_true_days": true_days,
            "cp_alert_days": alert_days,
            "cp_true_days_alerted": sum(d in alert_days for d in true_days),
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    source = f"{series.source}, forecast {forecast}" + (f" ({dam_column})" if dam is not None else "")
    typer.echo(f"{result.periods} periods of {source}; fleet {fleet}; hashprice {cfg.hashprice} $/TH/day")
    if charged:
        hit = sum(d in alert_days for d in true_days)
        typer.echo(
            f"4CP {cp_hours} h at ${charged[0].charge_per_kw}/kW, charged on the true days: "
            f"{', '.join(true_days) or 'none in these days'} ({hit} of {len(true_days)} alerted)"
        )
        typer.echo(f"4CP alert days ({len(alert_days)}): {', '.join(alert_days) or 'none'}")
    typer.echo(_table(result))
    typer.echo(
        f"solves: {result.solves} plans, median {result.solve_median_s:.3f} s, "
        f"max {result.solve_max_s:.3f} s, "
        f"fallbacks {result.fallbacks}; wall {wall_s:.0f} s"
    )
