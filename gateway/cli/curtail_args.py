"""Options and argument parsing shared by `hashinsight curtail plan` and `backtest` (thin: parse and
refuse with a one-line message; the library does the work)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from gateway.cli.common import fail
from gateway.curtail.backtest import fleet_classes
from gateway.curtail.backtest_cp import CpAlert, cp_alerts, day_window, true_cp_windows
from gateway.curtail.economics import Economics
from gateway.curtail.plan_model import MinerClass
from gateway.curtail.planner_model import Window
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.energy.prices import read_local_grid
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.tariffs import PriceSeries

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
    str | None,
    typer.Option(
        "--dam-column",
        "--day-ahead-column",
        help="Day-ahead price column ($/MWh), each day's prices public the day before at 13:30 local: the "
        "planner's forecast once published, and the source of the 4CP alerts and of the true 4CP day. "
        "Default: HB_SOUTH_DAM when the file has it, else none. `none`: no day-ahead prices (no alerts).",
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
        "--cp-day",
        help="A 4CP day YYYY-MM-DD known in advance (repeat): charged, and alerted to both strategies from "
        "the start. Default: the true day per month (highest day-ahead 16-18 h) is charged ex post, and "
        "strategies see only causal alerts.",
    ),
]
SolverOpt = Annotated[str, typer.Option(help="highs or cbc.")]
TimeLimitOpt = Annotated[
    float, typer.Option(help="Solver time limit per plan, seconds (hard kill 5 s later).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def decimal_arg(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=name) from None
    if not value.is_finite():
        raise typer.BadParameter(f"{text!r} is not a finite number", param_hint=name)
    return value


def fleet_arg(text: str) -> tuple[MinerClass, ...]:
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


def read_series(path: Path, column: str, tz: str) -> PriceSeries:
    try:
        with path.open("rb") as stream:
            return read_local_grid(stream, column=column, tz=tz)
    except ImportRefused as err:
        fail(f"{path}: {err}")
    except (OSError, ValueError) as err:
        fail(f"{path}: {err}")


def hours_arg(text: str) -> tuple[int, int]:
    start, sep, end = text.partition("-")
    if not (sep and start.isdigit() and end.isdigit() and 0 <= int(start) < int(end) <= 24):
        raise typer.BadParameter(f"{text!r} is not START-END hours like 16-18", param_hint="--cp-hours")
    return int(start), int(end)


def forced_days(days: list[str], hours: tuple[int, int], charge: Decimal, tz: str) -> tuple[Window, ...]:
    zone = ZoneInfo(tz)
    out = []
    for text in days:
        try:
            day = datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            raise typer.BadParameter(f"{text!r} is not YYYY-MM-DD", param_hint="--cp-day") from None
        out.append(day_window(day, zone=zone, hours=hours, charge_per_kw=charge))
    return tuple(out)


def cp_setup(
    days: list[str] | None,
    hours: tuple[int, int],
    charge: Decimal,
    tz: str,
    truth: PriceSeries,
    dam: PriceSeries | None,
) -> tuple[tuple[Window, ...], tuple[CpAlert, ...]]:
    """(charged windows, alerts): forced days are both, known from the start; otherwise the month's true
    day (hindsight, charged only) and the causal day-ahead alerts (none without day-ahead prices)."""
    if charge <= 0:
        return (), ()
    if days:
        forced = forced_days(days, hours, charge, tz)
        return forced, tuple(CpAlert(window=w, known_at=0) for w in forced)
    alerts = cp_alerts(dam, tz=tz, hours=hours, charge_per_kw=charge) if dam is not None else ()
    return true_cp_windows(truth, tz=tz, hours=hours, charge_per_kw=charge), alerts


def share_arg(text: str) -> Decimal:
    value = decimal_arg(text, "--persist")
    if not Decimal(0) <= value < 1:
        raise typer.BadParameter(f"{text!r} is not in [0, 1)", param_hint="--persist")
    return value


def has_column(path: Path, column: str) -> bool:
    """Whether the file's header names `column` (reads at most 64 KiB; the importer judges the rest)."""
    try:
        with path.open("rb") as stream:
            head = stream.readline(65_536).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    return column in (c.strip().strip('"') for c in head.split(","))


def economics_arg(pool_fee: str, pue: str, adder: str) -> Economics:
    try:
        return Economics(
            pool_fee=decimal_arg(pool_fee, "--pool-fee"),
            pue=decimal_arg(pue, "--pue"),
            adder_per_kwh=decimal_arg(adder, "--adder"),
        )
    except ValueError as err:
        fail(str(err), 2)
