"""`hashinsight assign`, `hashinsight settle --period YYYY-MM`, `hashinsight invoices show | export`.

Invoices are drafts and evidence: this product never moves, holds or pays out money, and every output
says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import duckdb
import typer

from gateway.cli.alerts import DEFAULT_API
from gateway.cli.common import DataDirOption, SiteConfigOption, data_dir, fail, site_settings
from gateway.cli.energy import ApiOption, NoGateway, error_of, request_json
from gateway.cli.tariffs import open_db
from gateway.config import Settings
from gateway.energy.evidence import (
    CHUNK_BYTES,
    MAX_EVIDENCE_BYTES,
    EvidenceInput,
    build_evidence,
    verify_evidence,
)
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
    config: SiteConfigOption = None,
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
    config: SiteConfigOption = None,
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
    config: SiteConfigOption = None,
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
    out: Annotated[
        Path,
        typer.Option(help="Directory to create for the export (must not exist, or be an empty directory)."),
    ],
    fmt: Annotated[str, typer.Option("--format", help="csv | json")] = "csv",
    config: SiteConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Export a settled month's drafts (the latest revision) as CSV or JSON, with its inputs and a
    freshly signed `evidence.json` that `hashinsight verify` checks. The revision is verified first
    (the site's signature, every output, every input file present and unchanged): a revision changed
    after settling is refused, naming what differs, never re-signed. The export is built beside --out
    and renamed into place, so a failure leaves nothing behind. Every row and document carries the
    notice that these are drafts and that no money moves through this product.

    Example: `hashinsight invoices export --period 2024-06 --out ./export-2024-06 --format csv`
    """
    if fmt not in ("csv", "json"):
        fail(f"--format must be csv or json, not {fmt!r}", 2)
    settings = site_settings(config)
    try:
        parse_period(period)
    except ValueError as err:
        fail(str(err), 2)
    _check_out(out)
    root = data_dir(data or settings.data_dir)
    folder = latest_revision(root / "settlements", period)
    if folder is None:
        fail(f"{period} is not settled yet: run `hashinsight settle --period {period}`")
    try:
        key = load_or_create_site_key(root)
    except SiteKeyError as err:
        fail(str(err))
    names = [f"invoices.{fmt}", "settlement.json"]
    original = _verified_revision(folder, key.public_key_b64, names)
    try:
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as err:
        fail(f"{out}: cannot write there ({err.strerror or err})")
    try:
        outputs = {name: _copy_checked(folder, name, original["outputs"][name], staging) for name in names}
        inputs = [EvidenceInput(**item) for item in original["inputs"]]
        for item in inputs:
            _copy_checked(folder, item.name, item.sha256, staging)
        evidence = build_evidence(
            subject=f"invoice drafts {period} ({folder.name}) as {fmt}",
            period=original["period"], inputs=inputs, outputs=outputs, generated_at=int(time.time()),
            site_id=settings.site.id, key=key, notice=NO_MONEY_NOTICE,
        )  # fmt: skip
        (staging / "evidence.json").write_bytes(evidence)
        count = len(json.loads(outputs["settlement.json"])["invoices"])
        staging.rename(out)  # atomic; replaces only an empty directory
    except (_ExportRefused, ValueError, KeyError, TypeError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        fail(f"{folder.name}: {err}")
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        fail(f"{out}: cannot write the export ({err.strerror or err})")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    typer.echo(f"exported {count} draft(s) to {out} ({', '.join(names)}, inputs/, evidence.json)")
    typer.echo(f"check it with: hashinsight verify {out / 'evidence.json'}")
    typer.echo(NO_MONEY_NOTICE)


class _ExportRefused(Exception):
    """A revision file changed between verifying and copying it (or is not a plain file)."""


def _check_out(out: Path) -> None:
    """--out must be new (or an empty directory) in an existing folder: usage errors, exit 2."""
    if out.is_symlink():
        fail(f"{out}: is a symbolic link; choose a new directory", 2)
    if out.exists():
        if not out.is_dir():
            fail(f"{out}: exists and is not a directory; choose a new directory", 2)
        try:
            empty = not any(out.iterdir())
        except OSError as err:
            fail(f"{out}: cannot read it ({err.strerror or err})", 2)
        if not empty:
            fail(f"{out}: not empty; choose a new directory", 2)
    if not out.parent.is_dir():
        fail(f"{out.parent}: no such directory (create it first)", 2)


def _verified_revision(folder: Path, site_key_b64: str, names: list[str]) -> dict[str, Any]:
    """The revision's evidence, after checking it was signed by this site's key and that every output and
    every input file beside it still has its signed hash; otherwise a one-line refusal naming what
    differs. Exporting re-signs, so anything unchecked here would be laundered into a valid export."""
    try:
        with (folder / "evidence.json").open("rb") as handle:
            evidence = handle.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as err:
        fail(f"{folder.name}/evidence.json: unreadable ({err.strerror or err}); settle again")
    result = verify_evidence(evidence, base_dir=folder, trusted_keys=[site_key_b64])
    problems = list(result.problems)
    problems += [
        f"input {name!r}: not present (an export ships every input)" for name in result.absent_inputs
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fail(f"{folder.name} does not verify, refusing to export it: {problems[0]}{more}")
    document: dict[str, Any] = json.loads(evidence)
    for name in names:
        if name not in document["outputs"]:
            fail(f"{folder.name}: its evidence lists no {name}; settle again to export it")
    return document


def _copy_checked(folder: Path, name: str, expected: str, staging: Path) -> bytes:
    """Copy `folder/name` to `staging/name`, hashing what is actually copied, so the export holds exactly
    the bytes that were verified even if the revision changes meanwhile. Returns the bytes of outputs
    (small); inputs (a month of 15-minute rows) are streamed and b"" is returned."""
    try:
        source = (folder / name).resolve(strict=True)
        if not source.is_relative_to(folder.resolve()) or not source.is_file():
            raise _ExportRefused(f"{name}: not a plain file inside the revision")
        handle = source.open("rb")
    except OSError as err:
        raise _ExportRefused(f"{name}: cannot be read ({err.strerror or err})") from None
    target = staging / name
    target.parent.mkdir(exist_ok=True)
    digest = hashlib.sha256()
    kept = bytearray()
    with handle, target.open("xb") as sink:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            sink.write(chunk)
            if "/" not in name:
                kept += chunk
    if "sha256:" + digest.hexdigest() != expected:
        raise _ExportRefused(f"{name}: changed while exporting; export again")
    return bytes(kept)
