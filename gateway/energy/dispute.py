"""Dispute packages and tickets: what we hand a utility or a pool when the figures disagree.

A package is one ZIP a third party can check without us: the file they sent (byte for byte), our figures
as CSV, the per-day difference report as CSV and JSON (with generated_at and the period), and
`evidence.json`, which lists the sha256 of every input and output and is signed with the site's Ed25519
key (`gateway.energy.evidence`). Members are written with a fixed timestamp (generated_at) and sorted
names, so the same inputs give the same ZIP bytes.

Crash order: the ZIP is written to a temporary file in the target directory, fsynced and linked into
place (never over an existing package); only then is the ticket inserted (one transaction). A crash
can leave a package without a ticket (the next run makes a new one) but never a ticket pointing at a
missing or half-written file.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.energy.evidence import EVIDENCE_MEMBER, build_evidence, input_from_bytes
from gateway.energy.pool_reconcile import PoolReport
from gateway.energy.reconcile import MeteredDay, MeterReport, day_bounds
from gateway.energy.settlement_model import NO_MONEY_NOTICE, Period
from gateway.energy.units import J_PER_KWH, display, site_zone
from shared.canonical import canonical_json, sha256_hex
from shared.signing import SigningKey

__all__ = [
    "DisputeKind",
    "DisputePackage",
    "Ticket",
    "build_package",
    "list_tickets",
    "meter_dispute",
    "metered_csv",
    "open_dispute",
    "pool_dispute",
    "record_ticket",
    "report_csv",
    "report_json",
]

DisputeKind = Literal["meter", "pool"]
UTC_ZONE = ZoneInfo("UTC")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class DisputePackage:
    """Everything that goes into one package. `period` is `[start, end)` in UTC epoch seconds (local
    midnights in `zone` for a meter dispute, UTC midnights for a pool one); first/last_day name it for
    people."""

    kind: DisputeKind
    first_day: date
    last_day: date
    period: Period
    zone: str
    summary: str
    received_name: str
    received: bytes
    ours_name: str
    ours: bytes
    report_csv: bytes
    report_json: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    id: int
    kind: DisputeKind
    period_start: str
    period_end: str
    status: str
    summary: str
    package_path: str
    package_sha256: str
    created_at: int


def report_csv(rows: Sequence[Mapping[str, str]]) -> bytes:
    """The per-day rows as CSV. Every cell is ours (numbers, dates, fixed words), none is a formula."""
    if not rows:
        raise ValueError("a report needs at least one row")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def report_json(
    summary: Mapping[str, Any], rows: Sequence[Mapping[str, str]], *, generated_at: int, period: Period
) -> bytes:
    """Canonical JSON (RFC 8785) of the summary and rows, with the timestamps a reader needs."""
    return canonical_json(
        {
            "generated_at": _iso(generated_at),
            "period": {"start": _iso(period.start), "end": _iso(period.end)},
            "summary": dict(summary),
            "rows": [dict(r) for r in rows],
            "notice": NO_MONEY_NOTICE,
        }
    )


def metered_csv(metered: Mapping[date, MeteredDay]) -> bytes:
    """Our figures as the package carries them: kWh for people, exact joules for checking."""
    lines = ["day,kwh,coverage_pct,energy_j"]
    for day in sorted(metered):
        v = metered[day]
        lines.append(f"{day},{display(Fraction(v.energy_j, J_PER_KWH)):f},{v.coverage_pct:f},{v.energy_j}")
    return ("\n".join(lines) + "\n").encode()


def meter_dispute(
    report: MeterReport,
    *,
    received_name: str,
    received: bytes,
    metered: Mapping[date, MeteredDay],
    zone: str,
    generated_at: int,
) -> DisputePackage:
    """The package contents for a meter report (its whole period, passing days included, for context)."""
    first, last = report.period
    tz = site_zone(zone)
    period = Period(start=day_bounds(first, tz)[0], end=day_bounds(last, tz)[1])
    rows = [r.cells() for r in report.rows]
    return DisputePackage(
        kind="meter",
        first_day=first,
        last_day=last,
        period=period,
        zone=tz.key,
        summary=report.summary_line(),
        received_name=received_name,
        received=received,
        ours_name="metered.csv",
        ours=metered_csv(metered),
        report_csv=report_csv(rows),
        report_json=report_json(report.summary(), rows, generated_at=generated_at, period=period),
    )


def pool_dispute(
    report: PoolReport, *, received_name: str, received: bytes, generated_at: int
) -> DisputePackage:
    """The package contents for a pool report; our inputs (hashrate, hashprice) are in its rows."""
    first, last = report.period
    period = Period(start=day_bounds(first, UTC_ZONE)[0], end=day_bounds(last, UTC_ZONE)[1])
    rows = [r.cells() for r in report.rows]
    ours = [{k: row[k] for k in ("day", "hashrate_ths", "hashprice_btc_per_th_day")} for row in rows]
    return DisputePackage(
        kind="pool",
        first_day=first,
        last_day=last,
        period=period,
        zone="UTC",
        summary=report.summary_line(),
        received_name=received_name,
        received=received,
        ours_name="hashrate_hashprice.csv",
        ours=report_csv(ours),
        report_csv=report_csv(rows),
        report_json=report_json(report.summary(), rows, generated_at=generated_at, period=period),
    )


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _member_name(name: str) -> str:
    """A received file's name as a flat, harmless ZIP member name (no directories, no `..`)."""
    base = _SAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")
    return base[-100:] or "file.csv"


def _zip_bytes(members: Mapping[str, bytes], generated_at: int) -> bytes:
    stamp = datetime.fromtimestamp(max(generated_at, 315_532_800), UTC).timetuple()[:6]  # ZIP epoch: 1980
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])
    return out.getvalue()


def build_package(
    package: DisputePackage, *, out_dir: Path, generated_at: int, site_id: str, key: SigningKey
) -> Path:
    """Write the signed ZIP atomically into `out_dir` and return its path.

    Every member sits at the ZIP's root under a plain name (the evidence format's rule for outputs, and
    no path an unzip could follow outside its folder): `received_<their file name>`, `ours_<name>`,
    `report.csv`, `report.json`, `evidence.json`."""
    received = "received_" + _member_name(package.received_name)
    ours = "ours_" + _member_name(package.ours_name)
    outputs = {"report.csv": package.report_csv, "report.json": package.report_json}
    evidence = build_evidence(
        subject=f"{package.kind} reconciliation dispute: {package.summary}",
        period={
            "start": package.period.start,
            "end": package.period.end,
            "first_day": package.first_day.isoformat(),
            "last_day": package.last_day.isoformat(),
            "zone": package.zone,
        },
        inputs=[
            input_from_bytes(received, package.received, f"the {package.kind} CSV as received"),
            input_from_bytes(ours, package.ours, "our figures for the same days"),
        ],
        outputs=outputs,
        generated_at=generated_at,
        site_id=site_id,
        key=key,
        notice=NO_MONEY_NOTICE,
    )
    members = {received: package.received, ours: package.ours, **outputs, EVIDENCE_MEMBER: evidence}
    data = _zip_bytes(members, generated_at)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"dispute-{package.kind}-{package.first_day}-{package.last_day}-{generated_at}.zip"
    target = out_dir / name
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # a hard link is rename's atomicity without its overwrite: an existing package (which a ticket
        # may point at, by hash) is never replaced
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(f"{target}: a package of that name exists already; not replaced") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(out_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
    return target


def record_ticket(
    conn: sqlite3.Connection,
    *,
    kind: DisputeKind,
    first_day: date,
    last_day: date,
    summary: str,
    package_path: Path,
    created_at: int,
) -> Ticket:
    """Insert an open ticket for a package that already exists on disk (its sha256 is recorded)."""
    digest = sha256_hex(package_path.read_bytes())
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO dispute_tickets (kind, period_start, period_end, status, summary, package_path,"
            " package_sha256, created_at) VALUES (?, ?, ?, 'open', ?, ?, ?, ?)",
            (
                kind,
                first_day.isoformat(),
                last_day.isoformat(),
                summary,
                str(package_path),
                digest,
                created_at,
            ),
        )
        ticket_id = cursor.lastrowid
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert ticket_id is not None
    return Ticket(
        id=ticket_id,
        kind=kind,
        period_start=first_day.isoformat(),
        period_end=last_day.isoformat(),
        status="open",
        summary=summary,
        package_path=str(package_path),
        package_sha256=digest,
        created_at=created_at,
    )


def open_dispute(
    conn: sqlite3.Connection,
    package: DisputePackage,
    *,
    out_dir: Path,
    generated_at: int,
    site_id: str,
    key: SigningKey,
) -> Ticket:
    """Package first, ticket second (see the module docstring for why this order)."""
    path = build_package(package, out_dir=out_dir, generated_at=generated_at, site_id=site_id, key=key)
    return record_ticket(
        conn,
        kind=package.kind,
        first_day=package.first_day,
        last_day=package.last_day,
        summary=package.summary,
        package_path=path,
        created_at=generated_at,
    )


def list_tickets(conn: sqlite3.Connection, *, status: str | None = None) -> list[Ticket]:
    query = "SELECT * FROM dispute_tickets" + (" WHERE status = ?" if status else "") + " ORDER BY id"
    rows = conn.execute(query, (status,) if status else ()).fetchall()
    return [Ticket(**dict(row)) for row in rows]
