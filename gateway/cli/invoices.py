"""`hashinsight assign`, `hashinsight settle --period YYYY-MM`, `hashinsight invoices show | export`.

Invoices are drafts and evidence: this product never moves, holds or pays out money, and every output
says so.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import duckdb
import typer

from gateway.cli.alerts import DEFAULT_API
from gateway.cli.common import DataDirOption, data_dir, fail
from gateway.cli.energy import ApiOption, NoGateway, error_of, request_json
from gateway.cli.tariffs import ConfigOption, open_db, site_settings
from gateway.config import Settings
from gateway.energy.evidence import EvidenceInput, build_evidence
from gateway.energy.invoices import latest_revision, parse_period
from gateway.energy.settlement_model import NO_MONEY_NOTICE
from gateway.settle_service import SettleFailed, SettleRefused, check_period, settle_period, summary_lines
from gateway.site_key import SiteKeyError, load_or_create_site_key
from gateway.store.energy_state import EnergyStateError, assign_miners

invoices_app = typer.Typer(
    help="A settled month's invoice drafts: show, export with signed evidence (no money moves).",
    no_args_is_help=True,
)
SETTLE_TIMEOUT_S = 900.0  # a month of a large site is seconds; a queue of months behind it, minutes
PeriodOption = Annotated[str, typer.Option("--period", help="Local calendar month, YYYY-MM (site zone).")]


def _when(text: str, zone: str) -> int:
    """YYYY-MM-DD (local midnight) or an ISO 8601 instant (offset required)."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text)
            return int(day.replace(tzinfo=ZoneInfo(zone)).timestamp())
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use YYYY-MM-DD or 2026-12-01T08:30:00-06:00") from None
    if at.tzinfo is None:
        raise typer.BadParameter(f"{text!r}: give the offset (or Z) so the instant is unambiguous")
    return int(at.timestamp())


def assign_command(
    miners: Annotated[list[str], typer.Argument(help="Miner ids (see `hashinsight inventory list`).")],
    customer: Annotated[str, typer.Option(help="The customer who owns them from --from on.")],
    start: Annotated[str, typer.Option("--from", help="YYYY-MM-DD (local midnight) or an ISO instant.")],
    config: ConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Record that miners change owner at an instant (any second: energy is split exactly there).
    Ownership is a history: earlier months keep their owners."""
    settings = site_settings(config)
    at = _when(start, settings.site.timezone)
    conn = open_db(data, settings)
    try:
        n = assign_miners(conn, miners, customer, at=at, now=int(time.time()))
    except EnergyStateError as err:
        fail(str(err))
    finally:
        conn.close()
    typer.echo(f"{n} miner(s) belong to {customer} from {start}")


def settle_command(
    period: PeriodOption,
    config: ConfigOption = None,
    data: DataDirOption = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Settle a month: per-customer invoice drafts from metered energy, the active tariff(s) and the
    `[energy]` fee schedule, written with their inputs and a signed evidence file to
    `<data-dir>/settlements/YYYY-MM-rN/`. Settling again makes a new revision; none is overwritten.

    While the gateway runs it holds telemetry.duckdb, so when the gateway answering at `--api` is the
    one using `--data-dir`, it settles the month itself; otherwise the files in `--data-dir` are read
    directly. The output is the same either way.

    Example: `hashinsight settle --period 2024-06`
    """
    settings = site_settings(config)
    try:
        check_period(period)
    except ValueError as err:
        fail(str(err), 2)
    root = data_dir(data or settings.data_dir)
    if _gateway_holds(api, root):
        record = _settle_through_gateway(api, period, settings.site.id)
    else:
        record = _settle_from_files(settings, root, data, period)
    for line in summary_lines(record):
        typer.echo(line)


def _gateway_holds(api: str, root: Path) -> bool:
    """Whether a gateway answers at `api` and runs on `root`. Another gateway (a demo on the default port,
    another site's data dir) does not hold these files, so they are read directly instead."""
    try:
        status, data = request_json(api, "GET", "/api/energy/settle")
    except NoGateway:
        return False
    if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data_dir"), str):
        return False  # not a gateway that settles: if it holds the files, opening them says so
    return Path(data["data_dir"]) == root.resolve()


def _settle_through_gateway(api: str, period: str, site_id: str) -> dict[str, Any]:
    """Ask the running gateway to settle. The site id goes along so a gateway configured for another site
    refuses instead of settling with settings this command was not given."""
    try:
        status, data = request_json(
            api, "POST", "/api/energy/settle", body={"period": period, "site_id": site_id},
            read_timeout_s=SETTLE_TIMEOUT_S,
        )  # fmt: skip
    except NoGateway as err:
        fail(f"the gateway at {api} went away ({err}); settle again")
    if status != 200:
        fail(error_of(status, data), 2 if status == 400 else 1)
    summary = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(summary, dict):
        fail(f"{api} answered without a settlement summary; is that a HashInsight gateway?")
    return summary


def _settle_from_files(settings: Settings, root: Path, data: Path | None, period: str) -> dict[str, Any]:
    telemetry_path = root / "telemetry.duckdb"
    if not telemetry_path.exists():
        fail(f"{telemetry_path}: no telemetry yet (has the gateway run with this data dir?)")
    conn = open_db(data, settings)
    try:
        try:
            telemetry = duckdb.connect(str(telemetry_path), read_only=True)
        except duckdb.Error as err:
            fail(f"{telemetry_path}: cannot open read-only ({err}); is a gateway running on another --api?")
        try:
            outcome = settle_period(
                settings=settings, data_dir=root, state=conn, telemetry=telemetry, period=period,
                now=int(time.time()),
            )  # fmt: skip
        except (SettleRefused, SettleFailed) as err:
            fail(str(err))
        finally:
            telemetry.close()
    finally:
        conn.close()
    return outcome.as_record()


def _load(data: Path | None, config: Path | None, period: str) -> tuple[Path, dict[str, Any]]:
    settings = site_settings(config)
    try:
        parse_period(period)
    except ValueError as err:
        fail(str(err), 2)
    root = data_dir(data or settings.data_dir) / "settlements"
    folder = latest_revision(root, period)
    if folder is None:
        fail(f"{period} is not settled yet: run `hashinsight settle --period {period}`")
    try:
        return folder, json.loads((folder / "settlement.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        fail(f"{folder}/settlement.json: unreadable ({err})")


@invoices_app.command("show")
def invoices_show(
    period: PeriodOption,
    customer: Annotated[str | None, typer.Option(help="Only this customer's draft, line by line.")] = None,
    config: ConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Show a settled month's drafts (the latest revision): totals per customer, or one draft's lines."""
    folder, record = _load(data, config, period)
    typer.echo(f"{period} ({folder.name}) - {record['notice']}")
    for inv in record["invoices"]:
        if customer is not None and inv["customer_id"] != customer:
            continue
        e = inv["energy"]
        typer.echo(
            f"{inv['customer_id']:24} {inv['total']:>14} {inv['currency']}  {e['kwh']:>14} kWh  "
            f"coverage {e['coverage_pct']} %  estimated {e['estimated_pct']} %"
        )
        if customer is not None:
            for ln in inv["lines"]:
                price = ln["unit_price"] or ""
                typer.echo(
                    f"    {ln['kind']:9} {ln['description'][:60]:60} {ln['quantity']:>14} {ln['unit']:6} "
                    f"{price:>10} {ln['amount']:>14}"
                )
    if customer is not None and not any(i["customer_id"] == customer for i in record["invoices"]):
        fail(f"no draft for customer {customer!r} in {period}")


@invoices_app.command("export")
def invoices_export(
    period: PeriodOption,
    out: Annotated[Path, typer.Option(help="Directory to write the export into (created; must be empty).")],
    fmt: Annotated[str, typer.Option("--format", help="csv | json")] = "csv",
    config: ConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Export a settled month's drafts as CSV or JSON, with its inputs and a freshly signed
    `evidence.json` that `hashinsight verify` checks. Every row and document carries the notice that
    these are drafts and that no money moves through this product."""
    if fmt not in ("csv", "json"):
        fail(f"--format must be csv or json, not {fmt!r}", 2)
    settings = site_settings(config)
    folder, record = _load(data, config, period)
    if out.exists() and any(out.iterdir()):
        fail(f"{out}: not empty; choose a new directory", 2)
    original = json.loads((folder / "evidence.json").read_bytes())
    inputs = [EvidenceInput(**item) for item in original["inputs"]]
    names = [f"invoices.{fmt}", "settlement.json"]
    outputs = {name: (folder / name).read_bytes() for name in names}
    try:
        key = load_or_create_site_key(data_dir(data or settings.data_dir))
        evidence = build_evidence(
            subject=f"invoice drafts {period} ({folder.name}) as {fmt}",
            period=original["period"], inputs=inputs, outputs=outputs, generated_at=int(time.time()),
            site_id=settings.site.id, key=key, notice=NO_MONEY_NOTICE,
        )  # fmt: skip
    except (SiteKeyError, ValueError) as err:
        fail(str(err))
    out.mkdir(parents=True, exist_ok=True)
    for name, blob in outputs.items():
        (out / name).write_bytes(blob)
    shutil.copytree(folder / "inputs", out / "inputs")
    (out / "evidence.json").write_bytes(evidence)
    typer.echo(
        f"exported {len(record['invoices'])} draft(s) to {out} ({', '.join(names)}, inputs/, evidence.json)"
    )
    typer.echo(f"check it with: hashinsight verify {out / 'evidence.json'}")
    typer.echo(NO_MONEY_NOTICE)
