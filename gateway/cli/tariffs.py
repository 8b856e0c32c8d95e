"""`hashinsight tariff import | show | activate` and `hashinsight prices import`: settlement inputs.

They write state.db directly (SQLite handles a second writer with its lock; each import is one
transaction), like `inventory import`. Every import is checked whole before anything is stored.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Annotated, cast
from zoneinfo import ZoneInfo

import typer

from gateway.cli.common import DataDirOption, SiteConfigOption, data_dir, fail, site_settings
from gateway.cli.common import read_input as read_file
from gateway.config import Settings
from gateway.energy.prices import PriceUnit, read_ercot_spp, read_local_grid, read_ts_price
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.tariff_file import parse_tariff_file
from gateway.energy.tariffs import FlatEnergy, RealTimeEnergy, Tariff, TariffError, TouEnergy
from gateway.energy.tariffs_urdb import read_urdb
from gateway.store.energy_state import (
    EnergyStateError,
    activate_tariff,
    import_prices,
    import_tariff,
    list_tariffs,
    tariff_source,
)
from gateway.store.state import StateError, open_state

tariff_app = typer.Typer(
    help="Tariffs: import (OpenEI URDB JSON or our TOML), show, and activate from a date.",
    no_args_is_help=True,
)
prices_app = typer.Typer(help="Market prices for real-time tariffs.", no_args_is_help=True)

MAX_FILE_BYTES = 64 * 1024 * 1024


def read_input(path: Path) -> bytes:
    return read_file(path, MAX_FILE_BYTES)


def open_db(data: Path | None, settings: Settings) -> sqlite3.Connection:
    try:
        return open_state(data_dir(data or settings.data_dir) / "state.db")
    except StateError as err:
        fail(str(err))


def local_midnight(text: str, zone: str) -> int:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date like 2026-12-01") from None
    return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp())


@tariff_app.command("import")
def tariff_import(
    file: Annotated[Path, typer.Argument(help="URDB JSON (from OpenEI) or a HashInsight tariff TOML.")],
    fmt: Annotated[str, typer.Option("--format", help="urdb | hashinsight | auto (by extension).")] = "auto",
    item: Annotated[int | None, typer.Option(help="URDB: which of several `items` to import.")] = None,
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Check and store a tariff, byte for byte. It is not in force until `tariff activate`.

    Example: `hashinsight tariff import SCE_TOU-8.json`, then
    `hashinsight tariff activate 1 --from 2026-12-01`.
    The HashInsight TOML form (flat, time-of-use, real-time from imported prices) is documented in
    `gateway/energy/tariff_file.py`. What a URDB file holds that we do not apply is listed, never dropped
    silently."""
    settings = site_settings(config)
    raw = read_input(file)
    kind = fmt if fmt != "auto" else ("urdb" if file.suffix.lower() == ".json" else "hashinsight")
    if kind not in ("urdb", "hashinsight"):
        fail(f"--format must be urdb, hashinsight or auto, not {fmt!r}", 2)
    notes: tuple[str, ...] = ()
    try:
        if kind == "urdb":
            notes = read_urdb(raw, item=item, valid_from=0).notes  # validity comes from `tariff activate`
        else:
            parse_tariff_file(raw)
    except ImportRefused as err:
        fail(f"{file}: {err}")
    except TariffError as err:
        fail(f"{file}: {err}")
    conn = open_db(data, settings)
    try:
        tariff_id, name, new = import_tariff(
            conn, raw, source_name=file.name, fmt=kind, urdb_item=item, now=int(time.time())
        )
    finally:
        conn.close()
    typer.echo(f"tariff {tariff_id}: {name} ({kind}){'' if new else ' - already imported, unchanged'}")
    for note in notes:
        typer.echo(f"  not applied: {note}")
    typer.echo(f"activate it with: hashinsight tariff activate {tariff_id} --from YYYY-MM-DD")


@tariff_app.command("show")
def tariff_show(
    tariff_id: Annotated[int | None, typer.Argument(help="Show one tariff in detail.")] = None,
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """List imported tariffs and when each is in force, or one tariff's rates."""
    settings = site_settings(config)
    zone = ZoneInfo(settings.site.timezone)
    conn = open_db(data, settings)
    try:
        rows = list_tariffs(conn)
        source = tariff_source(conn, tariff_id) if tariff_id is not None else None
    except EnergyStateError as err:
        fail(str(err))
    finally:
        conn.close()
    if source is None:
        if not rows:
            typer.echo("no tariffs imported (hashinsight tariff import FILE)")
        for row in rows:
            spans = ", ".join(f"{_day(a, zone)} .. {_day(b, zone) if b else 'open'}" for a, b in row.versions)
            typer.echo(
                f"{row.id:>4}  {row.name}  [{row.format}, {row.source_name}]  in force: {spans or 'never'}"
            )
        return
    name, fmt, raw, item = source
    try:
        if fmt == "urdb":
            demand_s = settings.energy.demand_interval_min * 60
            tariff = read_urdb(raw, item=item, valid_from=0, demand_interval_s=demand_s)
        else:
            parsed = parse_tariff_file(raw)
            if parsed.series is not None:
                typer.echo(f"{name}: real-time energy from price series {parsed.series!r}")
                return
            tariff = parsed.build(valid_from=0, demand_interval_s=settings.energy.demand_interval_min * 60)
    except (ImportRefused, TariffError) as err:
        fail(f"stored tariff {tariff_id} no longer parses: {err}")
    _print_tariff(tariff)


def _day(ts: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M %Z")


def _print_tariff(tariff: Tariff) -> None:
    typer.echo(f"{tariff.name} ({tariff.currency})")
    energy = tariff.energy
    if isinstance(energy, FlatEnergy):
        typer.echo(f"  energy: flat {energy.rate_per_kwh}/kWh")
    elif isinstance(energy, TouEnergy):
        for p in energy.periods:
            tiers = "; ".join(
                f"{t.rate}/kWh" + (f" up to {t.limit} kWh" if t.limit is not None else "") for t in p.tiers
            )
            typer.echo(f"  energy {p.name}: {tiers}")
    elif isinstance(energy, RealTimeEnergy):
        typer.echo(f"  energy: real-time ({energy.prices.source}) + {energy.adder_per_kwh}/kWh")
    d = tariff.demand
    typer.echo(f"  demand interval: {d.interval_s // 60} min")
    for p in (*d.tou_periods, *d.flat_periods):
        typer.echo(f"  demand {p.name}: " + "; ".join(f"{t.rate}/kW" for t in p.tiers))
    if tariff.fixed.per_month or tariff.fixed.per_day:
        typer.echo(f"  fixed: {tariff.fixed.per_month}/month, {tariff.fixed.per_day}/day")
    if tariff.minimum is not None:
        typer.echo(f"  minimum: {tariff.minimum.amount}/{tariff.minimum.per}")
    for note in tariff.notes:
        typer.echo(f"  not applied: {note}")


@tariff_app.command("activate")
def tariff_activate(
    tariff_id: Annotated[int, typer.Argument(help="Tariff id (see `hashinsight tariff show`).")],
    start: Annotated[str, typer.Option("--from", help="First local day in force (YYYY-MM-DD, site zone).")],
    actor: Annotated[str, typer.Option(help="Who decided, for the record.")] = "cli",
    force: Annotated[
        bool, typer.Option("--force", help="Allow a start inside a month that already has settled drafts.")
    ] = False,
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Put a tariff in force from local midnight of a day; the one in force before ends there.
    History is only appended to. A start inside (or before) a month that already has settled drafts is
    refused unless --force: settling that month again would price it differently from the drafts already
    handed out (those keep their own inputs and evidence either way)."""
    settings = site_settings(config)
    valid_from = local_midnight(start, settings.site.timezone)
    settled = _settled_months_from(data_dir(data or settings.data_dir) / "settlements", start[:7])
    if settled and not force:
        fail(
            f"{', '.join(settled)} already settled: a tariff from {start} would re-price them on the next "
            "settle; pass --force if that is intended"
        )
    conn = open_db(data, settings)
    try:
        activate_tariff(conn, tariff_id, valid_from=valid_from, actor=actor, now=int(time.time()))
    except EnergyStateError as err:
        fail(str(err))
    finally:
        conn.close()
    typer.echo(f"tariff {tariff_id} in force from {start} 00:00 {settings.site.timezone}")


def _usual_spacing_s(starts: tuple[int, ...]) -> int | None:
    """The most common gap between consecutive price intervals (None with fewer than 3 prices)."""
    if len(starts) < 3:
        return None
    gaps: dict[int, int] = {}
    for a, b in pairwise(starts):
        gaps[b - a] = gaps.get(b - a, 0) + 1
    return max(gaps, key=lambda g: (gaps[g], -g))


def _settled_months_from(root: Path, month: str) -> list[str]:
    """Settled months (YYYY-MM) at or after `month`, from the revision directories."""
    if not root.is_dir():
        return []
    found = {p.name[:7] for p in root.iterdir() if p.is_dir() and len(p.name) > 8 and p.name[7:9] == "-r"}
    return sorted(m for m in found if m >= month)


@prices_app.command("import")
def prices_import(
    file: Annotated[Path, typer.Argument(help="Price CSV.")],
    series: Annotated[
        str, typer.Option(help="Name to store the series under (a real-time tariff names it).")
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="ercot (settlement point prices: DeliveryDate, DeliveryHour, DeliveryInterval, ...), "
            "ts (`ts,price_usd_per_mwh`: ISO 8601 with offset or epoch s) or grid (naive local times "
            "in --time-column, prices in --column).",
        ),
    ] = "ercot",
    point: Annotated[
        str | None, typer.Option(help="ercot: the settlement point, if the file has several.")
    ] = None,
    column: Annotated[str | None, typer.Option(help="grid: the price column, e.g. HB_SOUTH_RTM.")] = None,
    time_column: Annotated[str, typer.Option(help="grid: the local time column.")] = "interval_start_local",
    unit: Annotated[
        str, typer.Option(help="grid/ts: $/MWh or $/kWh (ts: when the column does not say).")
    ] = "",
    tz: Annotated[str | None, typer.Option(help="Zone of local times (default: the site's).")] = None,
    interval_min: Annotated[
        int, typer.Option("--interval-min", help="ts/grid: minutes each price holds (15, 30 or 60).")
    ] = 15,
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Import market prices ($/MWh or $/kWh) for a real-time tariff. The whole file is checked first
    (bad rows are named by line and column); a price that differs from one already stored for the
    same interval refuses the import, because it would silently change drafted invoices."""
    settings = site_settings(config)
    zone = tz or settings.site.timezone
    raw = read_input(file)
    if interval_min not in (15, 30, 60):
        fail(f"--interval-min must be 15, 30 or 60, not {interval_min}", 2)
    if unit not in ("", "$/MWh", "$/kWh"):
        fail(f"--unit must be $/MWh or $/kWh, not {unit!r}", 2)
    price_unit = cast(PriceUnit, unit or "$/MWh")
    try:
        if fmt == "ercot":
            parsed = read_ercot_spp(raw, settlement_point=point, tz=zone)
        elif fmt == "ts":
            parsed = read_ts_price(raw, unit=price_unit if unit else None, interval_s=interval_min * 60)
        elif fmt == "grid":
            if not column:
                fail("--format grid needs --column", 2)
            parsed = read_local_grid(
                raw,
                column=column,
                tz=zone,
                unit=price_unit,
                time_column=time_column,
                interval_s=interval_min * 60,
            )
        else:
            fail(f"--format must be ercot, ts or grid, not {fmt!r}", 2)
    except ImportRefused as err:
        fail(f"{file}: {err}")
    except TariffError as err:
        fail(f"{file}: {err}")
    spacing = _usual_spacing_s(parsed.starts)
    if spacing is not None and spacing > parsed.interval_s:
        fail(
            f"{file}: prices are {spacing // 60} minutes apart but would each hold "
            f"{parsed.interval_s // 60}: pass --interval-min {spacing // 60} (nothing imported)"
        )
    conn = open_db(data, settings)
    try:
        summary = import_prices(
            conn, series, parsed, fmt=fmt, source_name=file.name, data=raw, now=int(time.time())
        )
    except EnergyStateError as err:
        fail(str(err))
    finally:
        conn.close()
    z = ZoneInfo(zone)
    span = (
        f"{_day(summary.first_start, z)} .. {_day(summary.last_start, z)}"
        if summary.first_start is not None and summary.last_start is not None
        else "empty"
    )
    typer.echo(
        f"{series}: {summary.added} new interval price(s), {summary.unchanged} already stored ({span})"
    )
