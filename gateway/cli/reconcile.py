"""`hashinsight reconcile meter | pool`: compare a utility-meter or pool-earnings CSV with our figures.

Thin: read the files, call `gateway.energy` (import, reconcile, dispute), print. Our metered energy per
day comes from the gateway's daily site figures (or a CSV, `--metered`); our hashrate and hashprice per
day for the pool side are a CSV for now (`--ours`). Beyond tolerance, a signed dispute package (ZIP) is
written and an open ticket recorded in state.db, package first. Exit status: 0 (report printed, disputes
or not), 1 bad input, 2 usage.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import DataDirOption, data_dir, fail, read_input, site_settings
from gateway.config import ENV_CONFIG, Settings
from gateway.energy.aggregates import Level
from gateway.energy.dispute import DisputePackage, meter_dispute, open_dispute, pool_dispute
from gateway.energy.meter_csv import MeterMapping, read_day_table, read_meter_csv, read_metered_csv
from gateway.energy.pool_csv import PRESETS, PoolMapping, generic_mapping, read_pool_csv
from gateway.energy.pool_reconcile import DEFAULT_POOL_TOLERANCE_PCT, reconcile_pool
from gateway.energy.reconcile import DEFAULT_TOLERANCES_PCT, MeteredDay, meter_days, reconcile_meter
from gateway.energy.safe_csv import ImportRefused
from gateway.site_key import SiteKeyError, load_or_create_site_key
from gateway.store.site_energy import read_figures
from gateway.store.state import StateError, open_state

reconcile_app = typer.Typer(
    help="Reconcile a utility-meter or pool-earnings CSV with our figures; dispute what disagrees.",
    no_args_is_help=True,
)

MAX_FILE_BYTES = 256 * 1024 * 1024
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar=ENV_CONFIG, help="Site configuration (TOML): site id, data dir."),
]
OutDirOption = Annotated[
    Path | None,
    typer.Option(
        "--out-dir", help="Where dispute packages go. Default: DATA_DIR/disputes.", show_default=False
    ),
]
NoDisputeOption = Annotated[
    bool, typer.Option("--no-dispute", help="Only print the report: no package, no ticket.")
]


def _read(path: Path) -> bytes:
    return read_input(path, MAX_FILE_BYTES)


def _pct(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        fail(f"{what}: {text!r} is not a number", 2)
    if not value.is_finite() or value < 0:
        fail(f"{what}: {text!r} must be a number >= 0", 2)
    return value


def _tolerances(pairs: Sequence[str]) -> dict[str, Decimal]:
    table = dict(DEFAULT_TOLERANCES_PCT)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--tolerance {pair!r}: expected CLASS=PERCENT, e.g. revenue=0.5", 2)
        table[name.strip()] = _pct(value, f"--tolerance {name.strip()}")
    return table


def _table(title: str, rows: list[dict[str, str]], columns: Sequence[str]) -> None:
    table = Table(title=title)
    for name in columns:
        table.add_column(name, justify="left" if name in ("day", "status", "note") else "right")
    style = {"pass": "green", "fail": "bold red", "missing": "yellow"}
    for row in rows:
        table.add_row(*(row[c] for c in columns), style=style.get(row["status"], ""))
    console = Console()
    if not console.is_terminal:  # piped or captured: no terminal width to respect, keep figures whole
        console = Console(width=160)
    console.print(table)


def _dispute(
    package: DisputePackage, now: int, settings: Settings, data: Path | None, out_dir: Path | None
) -> None:
    base = data_dir(data or settings.data_dir)
    try:
        key = load_or_create_site_key(base)
        conn = open_state(base / "state.db")
    except (SiteKeyError, StateError) as err:
        fail(str(err))
    try:
        ticket = open_dispute(
            conn,
            package,
            out_dir=out_dir or base / "disputes",
            generated_at=now,
            site_id=settings.site.id,
            key=key,
        )
    except OSError as err:
        fail(f"cannot write the dispute package: {err.strerror or err}")
    finally:
        conn.close()
    typer.echo(f"dispute ticket #{ticket.id} opened; package: {ticket.package_path}")


@reconcile_app.command("meter")
def meter_command(
    file: Annotated[Path, typer.Argument(help="The utility's meter CSV, as received.")],
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            help="TOML naming the file's columns: time_column, time_format (iso | epoch | strptime "
            "pattern), tz (IANA zone of the file's naive times; default the site's zone), value_column, "
            "unit (Wh | kWh | MWh), kind (interval | register), interval_s, time_marks (start | end), "
            "meter_class.",
        ),
    ],
    metered: Annotated[
        Path | None,
        typer.Option(
            "--metered",
            help="Our energy per site-local day, CSV `day,kwh,coverage_pct` (e.g. 2024-11-02,24010.5,99.8)."
            " Default: the gateway's own daily site figures (telemetry.duckdb in the data dir; stop the"
            " gateway first, DuckDB allows one process).",
            show_default=False,
        ),
    ] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance",
            help="Per meter class, percent: CLASS=PCT (repeatable). Defaults revenue=0.5, check=2.0.",
            show_default=False,
        ),
    ] = None,
    meter_class: Annotated[
        str | None,
        typer.Option(
            help="Override the mapping's meter_class (revenue, check, or one named by --tolerance).",
            show_default=False,
        ),
    ] = None,
    min_coverage_pct: Annotated[
        str, typer.Option(help="Below this coverage (%) of ours, a day is 'missing', not compared.")
    ] = "95",
    config: ConfigOption = None,
    data: DataDirOption = None,
    out_dir: OutDirOption = None,
    no_dispute: NoDisputeOption = False,
) -> None:
    """Compare a utility-meter CSV with our metered energy per local site day (kWh; DST days have 23/25 h).
    Days are always the site's (`[site] timezone`), whatever zone the meter file's times are in.

    A day passes when |meter - ours| <= tolerance x ours. If any day fails, a signed dispute package (ZIP)
    is written and an open ticket recorded.

    Example: `hashinsight reconcile meter usage.csv --mapping utility.toml --metered ours.csv`
    """
    try:
        spec = MeterMapping.from_dict(tomllib.loads(_read(mapping).decode("utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, TypeError) as err:
        fail(f"{mapping}: {err}", 2)
    settings = site_settings(config)
    site_tz = settings.site.timezone
    tolerances = _tolerances(tolerance or [])
    chosen_class = meter_class or spec.meter_class
    if chosen_class not in tolerances:
        where = "--meter-class" if meter_class else f"{mapping}: meter_class"
        fail(f"{where}: unknown meter class {chosen_class!r} (known: {', '.join(sorted(tolerances))})", 2)
    min_coverage = _pct(min_coverage_pct, "--min-coverage-pct")
    received = _read(file)
    try:
        days = meter_days(read_meter_csv(received, spec, site_tz=site_tz), site_tz)
    except ImportRefused as err:
        fail(f"{file}: {err}")
    if metered is None:
        ours = _metered_from_telemetry(data or settings.data_dir, list(days), site_tz)
    else:
        try:
            ours = read_metered_csv(_read(metered))
        except ImportRefused as err:
            fail(f"{metered}: {err}")
    report = reconcile_meter(
        days, ours, meter_class=chosen_class, tolerances_pct=tolerances, min_coverage_pct=min_coverage
    )
    columns = ("day", "meter_kwh", "metered_kwh", "diff_kwh", "diff_pct", "coverage_pct", "status", "note")
    _table(f"Meter vs metered (site days, {site_tz})", [r.cells() for r in report.rows], columns)
    typer.echo(report.summary_line())
    if report.failed and not no_dispute:
        now = int(time.time())
        package = meter_dispute(
            report, received_name=file.name, received=received, metered=ours, zone=site_tz, generated_at=now
        )
        _dispute(package, now, settings, data, out_dir)


def _metered_from_telemetry(data: Path | None, days: list[date], tz: str) -> dict[date, MeteredDay]:
    """Our daily site figures (gateway.store.site_energy) for the meter file's days, by site-local date.
    The gateway's daily figures are site-local days already; figures labelled with another zone (the
    site moved zone since) are refused rather than relabelled."""
    if not days:
        return {}
    path = data_dir(data) / "telemetry.duckdb"
    if not path.exists():
        fail(f"{path}: no telemetry here; pass --metered CSV or --data-dir")
    zone = ZoneInfo(tz)
    since = int(datetime.combine(min(days), clock_time(0), zone).timestamp())
    until = int(datetime.combine(max(days) + timedelta(days=1), clock_time(0), zone).timestamp())
    try:
        conn = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        fail(f"{path}: cannot open read-only ({err}); stop the gateway or pass --metered CSV")
    try:
        figures = read_figures(conn, Level.DAY, since, until)
    finally:
        conn.close()
    out: dict[date, MeteredDay] = {}
    for fig in figures:
        if fig.tz != tz:
            fail(f"{path}: daily figures are for zone {fig.tz!r}, the site is {tz!r}; pass --metered CSV")
        day = datetime.fromtimestamp(fig.start, zone).date()
        out[day] = MeteredDay(
            energy_j=fig.energy.energy_j, coverage_pct=fig.energy.coverage_pct or Decimal(0)
        )
    return out


@reconcile_app.command("pool")
def pool_command(
    file: Annotated[Path, typer.Argument(help="The pool's earnings CSV, as exported.")],
    preset: Annotated[
        Literal["braiins", "f2pool", "ocean", "generic"],
        typer.Option(
            help="Export format: braiins (daily_rewards), f2pool (v2 transactions), ocean, generic."
        ),
    ],
    ours: Annotated[
        Path,
        typer.Option(
            "--ours",
            help="Our inputs per UTC day, CSV `day,hashrate_ths,hashprice_btc_per_th_day` "
            "(average TH/s from telemetry; hashprice in BTC per TH/s per day).",
        ),
    ],
    pool_fee_pct: Annotated[str, typer.Option(help="The pool's FPPS fee, percent (e.g. 2.5).")],
    tolerance_pct: Annotated[str, typer.Option(help="Allowed |paid - expected| / expected, percent.")] = str(
        DEFAULT_POOL_TOLERANCE_PCT
    ),
    date_column: Annotated[str | None, typer.Option(help="generic: the date column.")] = None,
    amount_column: Annotated[str | None, typer.Option(help="generic: the amount column.")] = None,
    unit: Annotated[Literal["BTC", "sat"], typer.Option(help="generic: amount unit.")] = "BTC",
    config: ConfigOption = None,
    data: DataDirOption = None,
    out_dir: OutDirOption = None,
    no_dispute: NoDisputeOption = False,
) -> None:
    """Compare what the pool paid per UTC day with expected FPPS earnings: hashrate_ths x hashprice x
    (1 - fee), in BTC, rounded to the satoshi.

    Example: `hashinsight reconcile pool rewards.csv --preset braiins --ours ours.csv --pool-fee-pct 2.5`
    """
    mapping: PoolMapping
    if preset == "generic":
        if not date_column or not amount_column:
            fail("--preset generic needs --date-column and --amount-column", 2)
        mapping = generic_mapping(date_column, amount_column, unit)
    else:
        mapping = PRESETS[preset]
    fee = _pct(pool_fee_pct, "--pool-fee-pct")
    if fee > 100:
        fail("--pool-fee-pct: must be 0..100", 2)
    tolerance = _pct(tolerance_pct, "--tolerance-pct")
    settings = site_settings(config)
    received = _read(file)
    try:
        paid = read_pool_csv(received, mapping)
    except ImportRefused as err:
        fail(f"{file}: {err}")
    try:
        table = read_day_table(_read(ours), ("hashrate_ths", "hashprice_btc_per_th_day"))
    except ImportRefused as err:
        fail(f"{ours}: {err}")
    report = reconcile_pool(
        paid.paid_btc,
        {d: v["hashrate_ths"] for d, (_, v) in table.items()},
        {d: v["hashprice_btc_per_th_day"] for d, (_, v) in table.items()},
        pool=preset,
        pool_fee_pct=fee,
        tolerance_pct=tolerance,
    )
    columns = ("day", "hashrate_ths", "expected_btc", "paid_btc", "diff_btc", "diff_pct", "status", "note")
    _table(f"Pool {preset}: expected FPPS vs paid (UTC days)", [r.cells() for r in report.rows], columns)
    if paid.skipped_rows:
        typer.echo(f"{paid.skipped_rows} non-mining rows (payouts, adjustments) skipped")
    typer.echo(report.summary_line())
    if report.failed and not no_dispute:
        now = int(time.time())
        package = pool_dispute(report, received_name=file.name, received=received, generated_at=now)
        _dispute(package, now, settings, data, out_dir)
