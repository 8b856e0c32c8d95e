"""`hashinsight curtail savings --period YYYY-MM`: what curtailment saved, per day, strategy and customer.

A thin shell: it reads the site's settings, opens state.db and telemetry.duckdb (read-only), calls
`gateway.curtail.savings_input` and `savings.attribute`, and prints. Registered on the curtail group
by `register(curtail_app)` at the end of `gateway/cli/curtail.py`.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer

from gateway.cli.common import DataDirOption, SiteConfigOption, data_dir, fail, site_settings
from gateway.cli.tariffs import open_db
from gateway.curtail.savings import Economics, SavingsLine, attribute
from gateway.curtail.savings_input import GRID_S, Anomalies, PriceFn
from gateway.curtail.savings_read import load_savings_input
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.energy.bill import BillingPeriod
from gateway.energy.invoices import parse_period
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import TariffError
from gateway.energy.units import display, kwh, site_zone
from gateway.store.energy_state import EnergyStateError, assignments_between, tariff_history

_PERIOD = re.compile(r"\d{4}-\d{2}", re.ASCII)


def register(app: typer.Typer) -> None:
    app.command("savings", short_help="What curtailment saved: kWh, cost, revenue forgone, net.")(
        savings_command
    )


def _decimal(text: str | None, what: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"{what}: {text!r} is not a number", 2)
    if not value.is_finite():
        fail(f"{what}: {text!r} is not a finite number", 2)
    return value


def savings_command(
    period: Annotated[str, typer.Option("--period", help="Local calendar month, YYYY-MM (site zone).")],
    hashprice: Annotated[
        str | None,
        typer.Option(help="Hashprice, USD per TH/s per day (default: [curtail] hashprice_usd_per_th_day)."),
    ] = None,
    pool_fee: Annotated[
        str | None, typer.Option(help="Pool fee as a fraction, 0.02 = 2 % (default: [curtail] pool_fee).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Report what curtailment saved in a month, per local day, strategy (plan, override, fail_policy,
    manual) and customer, from the executor's verified sleeps and wakes, the metered 15-minute energy and
    the miners' firmware profiles:

    - saved kWh, conservative (profile watts x curtailed time - metered) and baseline (the miner's own
      same-hour average over the previous 7 days x curtailed time - metered; `-` without history);
    - cost saved ($, at the tariff's price per interval), revenue forgone ($: profile TH/s x curtailed
      time x hashprice x (1 - pool fee)) and net (conservative cost saved - revenue forgone).

    Rows that did not fit (a wake without a sleep, unknown profiles, intervals without metered energy or
    a price) are counted below the table. Reads telemetry.duckdb, so run it while the gateway is stopped.

    Example: `hashinsight curtail savings --period 2024-07 --json`"""
    settings = site_settings(config)
    if not _PERIOD.fullmatch(period):  # parse_period's `$` would let "2024-06\n" through
        fail(f"period {period[:20]!r} is not YYYY-MM (e.g. 2024-06)", 2)
    try:
        year, month = parse_period(period)
    except ValueError as err:
        fail(str(err), 2)
    zone = settings.site.timezone
    bp = BillingPeriod.month(year, month, zone)
    end = min(bp.end, int(time.time()) // GRID_S * GRID_S)  # the interval under way is not over yet
    if end <= bp.start:
        fail(f"{period} has not started yet", 2)
    curtail = settings.curtail
    hp = _decimal(hashprice, "--hashprice")
    fee = _decimal(pool_fee, "--pool-fee")
    try:
        economics = Economics(
            hashprice_usd_per_th_day=curtail.hashprice_usd_per_th_day if hp is None else hp,
            pool_fee=curtail.pool_fee if fee is None else fee,
        )
    except ValueError as err:
        fail(str(err), 2)
    try:
        profiles = load_profiles()
    except ProfileError as err:
        fail(str(err))
    telemetry_path = data_dir(data or settings.data_dir) / "telemetry.duckdb"
    if not telemetry_path.exists():
        fail(f"{telemetry_path}: no telemetry yet (has the gateway run with this data dir?)")
    state = open_db(data, settings)
    try:
        tariffs = tariff_history(
            state, start=bp.start, end=end, demand_interval_s=settings.energy.demand_interval_min * 60
        )
        price_fn: PriceFn | None = energy_price_fn(tariffs, zone) if tariffs else None
        assignments = assignments_between(state, bp.start, end)
        telemetry = _open_telemetry(telemetry_path)
        try:
            savings = load_savings_input(
                state=state,
                telemetry=telemetry,
                start=bp.start,
                end=end,
                profiles=profiles,
                price_fn=price_fn,
            )
        finally:
            telemetry.close()
    except (EnergyStateError, TariffError) as err:
        fail(str(err))
    finally:
        state.close()
    lines = attribute(savings.intervals, economics, assignments=assignments, tz=site_zone(zone))
    if as_json:
        payload = {
            "period": period,
            "start": bp.start,
            "end": end,
            "priced": price_fn is not None,
            "lines": [_line_json(line) for line in lines],
            "anomalies": savings.anomalies.as_dict(),
        }
        typer.echo(json.dumps(payload, indent=1))
        return
    if price_fn is None:
        typer.echo("note: no tariff in force: energy is priced at 0 (import and activate one)", err=True)
    _print_table(lines)
    _print_anomalies(savings.anomalies)


def _open_telemetry(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        fail(f"{path}: cannot open read-only ({err}); stop the gateway first")


def _kwh(joules: int | None) -> str | None:
    return None if joules is None else str(display(kwh(joules), 3))


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _line_json(line: SavingsLine) -> dict[str, Any]:
    return {
        "day": line.day.isoformat(),
        "strategy": line.strategy,
        "customer_id": line.customer_id,
        "curtailed_s": line.curtailed_s,
        "conservative_saved_kwh": _kwh(line.conservative_saved_j),
        "baseline_saved_kwh": _kwh(line.baseline_saved_j),
        "baseline_covered_s": line.baseline_covered_s,
        "conservative_cost_saved": _money(line.conservative_cost_saved),
        "baseline_cost_saved": _money(line.baseline_cost_saved),
        "revenue_forgone": _money(line.revenue_forgone),
        "net_benefit": _money(line.net_benefit),
    }


def _print_table(lines: list[SavingsLine]) -> None:
    if not lines:
        typer.echo("no verified curtailment in this period")
        return
    typer.echo(
        f"{'day':<10}  {'strategy':<11}  {'customer':<14}  {'hours':>7}  {'kWh cons':>10}  {'kWh base':>10}"
        f"  {'$ saved':>9}  {'$ base':>9}  {'$ forgone':>9}  {'$ net':>9}"
    )
    for line in lines:
        base_kwh = _kwh(line.baseline_saved_j) or "-"
        base_cost = _money(line.baseline_cost_saved) or "-"
        typer.echo(
            f"{line.day.isoformat():<10}  {line.strategy[:11]:<11}  {line.customer_id[:14]:<14}  "
            f"{line.curtailed_s / 3600:>7.2f}  {_kwh(line.conservative_saved_j):>10}  {base_kwh:>10}  "
            f"{line.conservative_cost_saved:>9}  {base_cost:>9}  {line.revenue_forgone:>9}  "
            f"{line.net_benefit:>9}"
        )


def _print_anomalies(anomalies: Anomalies) -> None:
    counts = {k: v for k, v in anomalies.as_dict().items() if v and k != "unknown_profile_miners"}
    if counts:
        listed = ", ".join(f"{k}={v}" for k, v in counts.items())
        typer.echo(f"counted, not saved (action rows; 15-min pieces): {listed}")
    if anomalies.unknown_profile_miners:
        shown = ", ".join(anomalies.unknown_profile_miners[:10])
        more = len(anomalies.unknown_profile_miners) - 10
        typer.echo(f"miners without a known profile: {shown}" + (f" (+{more} more)" if more > 0 else ""))
