"""Settle a month to a directory a client can check: the inputs, the drafts, and a signed evidence file.

    settlements/2024-06-r1/
      inputs/energy_15m.csv      every metered row of the month (miner, interval, joules, coverage)
      inputs/assignments.csv     who owned which miner when
      inputs/tariff-<id>.<ext>   each tariff in force, byte for byte as imported
      inputs/prices-<series>.csv real-time prices used (if any)
      inputs/fees.json           the fee schedule
      settlement.json            site totals, the site bill(s), every draft with its lines
      invoices.csv / invoices.json
      evidence.json              hashes of all of the above, signed with the site's Ed25519 key

A month settled again gets the next revision (`-r2`): a draft once handed to a customer is never
overwritten. The directory is built under a temporary name and renamed into place, so a crash leaves
either a complete revision or none. Everything written says that it is a draft and that this product
never moves money (`NO_MONEY_NOTICE`).

This module does I/O (DuckDB, files); the arithmetic is `invoicing.settle_month`, which is pure.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from gateway.energy.bill import BillingPeriod
from gateway.energy.evidence import EvidenceInput, build_evidence, input_from_bytes
from gateway.energy.invoicing import MonthSettlement, settle_month
from gateway.energy.settlement import (
    Assignment,
    FacilityAdder,
    FeeSchedule,
    FixedFee,
    IntervalColumns,
    KwhAdder,
    Pue,
)
from gateway.energy.settlement_model import NO_MONEY_NOTICE
from gateway.energy.tariffs import RealTimeEnergy, Tariff
from shared.signing import SigningKey

__all__ = [
    "SettledMonth",
    "energy_columns",
    "fee_schedule",
    "invoice_rows",
    "latest_revision",
    "parse_period",
    "settle_to_directory",
]

_PERIOD = re.compile(r"(\d{4})-(0[1-9]|1[0-2])", re.ASCII)
_REVISION = re.compile(r"^(\d{4}-\d{2})-r(\d+)$")


def parse_period(text: str) -> tuple[int, int]:
    match = _PERIOD.fullmatch(text)
    if match is None:
        raise ValueError(f"period {text!r} is not YYYY-MM (e.g. 2024-06)")
    return int(match[1]), int(match[2])


def energy_columns(conn: duckdb.DuckDBPyConnection, start: int, end: int) -> IntervalColumns:
    """The month's `energy_15m` rows as columns, miners numbered by id - no per-row Python objects."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT miner_id FROM energy_15m WHERE interval_start >= ? AND interval_start < ?"
            " ORDER BY miner_id",
            [start, end],
        ).fetchall()
    ]
    result = conn.execute(
        """
        SELECT m.idx AS miner, e.interval_start, e.joules, e.covered_s, e.uncovered_s, e.estimated_s
        FROM energy_15m e
        JOIN (SELECT miner_id, CAST(row_number() OVER (ORDER BY miner_id) - 1 AS INTEGER) AS idx
              FROM (SELECT DISTINCT miner_id FROM energy_15m
                    WHERE interval_start >= $1 AND interval_start < $2)) m USING (miner_id)
        WHERE e.interval_start >= $1 AND e.interval_start < $2
        """,
        [start, end],
    ).fetchnumpy()
    return IntervalColumns(
        miner_ids=tuple(ids),
        **{k: np.asarray(v, dtype=np.int64) for k, v in result.items()},
    )


def fee_schedule(energy: Any) -> FeeSchedule:
    """`FeeSchedule` from the `[energy]` settings section."""
    facility: Pue | FacilityAdder | None = None
    if energy.pue is not None:
        facility = Pue(factor=energy.pue)
    elif energy.facility_adder_per_kwh is not None:
        facility = FacilityAdder(per_kwh=energy.facility_adder_per_kwh)
    return FeeSchedule(
        currency=energy.currency,
        facility=facility,
        adders=tuple(KwhAdder(description=a.description, per_kwh=a.per_kwh) for a in energy.adders),
        fixed_fees=tuple(
            FixedFee(
                description=f.description,
                amount=f.amount,
                customers=None if f.customers is None else frozenset(f.customers),
            )
            for f in energy.fixed_fees
        ),
        service_fee_pct=energy.service_fee_pct,
        tax_pct=energy.tax_pct,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SettledMonth:
    path: Path
    revision: int
    month: MonthSettlement


def latest_revision(root: Path, period: str) -> Path | None:
    best: tuple[int, Path] | None = None
    if root.is_dir():
        for child in root.iterdir():
            match = _REVISION.match(child.name)
            if match and match[1] == period and child.is_dir():
                n = int(match[2])
                if best is None or n > best[0]:
                    best = (n, child)
    return None if best is None else best[1]


def _safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet will not execute: text starting with = + - @ (or a tab/CR) is prefixed
    with an apostrophe. Numbers are written by us as plain decimals and pass unchanged."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r" and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


INVOICE_COLUMNS = (
    "customer_id",
    "period_start",
    "period_end",
    "currency",
    "line",
    "kind",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
    "kwh",
    "coverage_pct",
    "measured_pct",
    "estimated_pct",
    "notice",
)


def invoice_rows(month: MonthSettlement) -> list[dict[str, str]]:
    """One row per invoice line plus a `total` row per draft, every row carrying the notice."""
    rows: list[dict[str, str]] = []
    s = month.settlement
    for inv in s.invoices:
        for n, ln in enumerate(inv.lines, start=1):
            fig = ln.energy
            rows.append(
                {
                    "customer_id": inv.customer_id,
                    "period_start": str(s.period.start),
                    "period_end": str(s.period.end),
                    "currency": inv.currency,
                    "line": str(n),
                    "kind": str(ln.kind),
                    "description": ln.description,
                    "quantity": str(ln.quantity),
                    "unit": ln.unit,
                    "unit_price": "" if ln.unit_price is None else str(ln.unit_price),
                    "amount": str(ln.amount),
                    "kwh": "" if fig is None else str(fig.kwh),
                    "coverage_pct": "" if fig is None else _opt(fig.coverage_pct),
                    "measured_pct": "" if fig is None else _measured_pct(fig.estimated_pct),
                    "estimated_pct": "" if fig is None else _opt(fig.estimated_pct),
                    "notice": inv.notice,
                }
            )
        rows.append(
            {
                **dict.fromkeys(INVOICE_COLUMNS, ""),
                "customer_id": inv.customer_id,
                "period_start": str(s.period.start),
                "period_end": str(s.period.end),
                "currency": inv.currency,
                "kind": "total",
                "description": "Total (sum of the rounded lines)",
                "amount": str(inv.total),
                "kwh": str(inv.energy.kwh),
                "coverage_pct": _opt(inv.energy.coverage_pct),
                "measured_pct": _measured_pct(inv.energy.estimated_pct),
                "estimated_pct": _opt(inv.energy.estimated_pct),
                "notice": inv.notice,
            }
        )
    return rows


def _opt(value: Decimal | None) -> str:
    """An exact 0 is "0.00", not a blank cell: blank means there was no time to measure at all."""
    return "" if value is None else str(value)


def _measured_pct(estimated: Decimal | None) -> str:
    return "" if estimated is None else str(Decimal(100) - estimated)


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_safe_cell(v) for v in row] for row in rows])
    return buf.getvalue().encode("utf-8")


def _settlement_record(month: MonthSettlement) -> dict[str, Any]:
    record = month.settlement.as_record()
    record["zone"] = month.zone
    record["month"] = f"{month.year:04d}-{month.month:02d}"
    record["site_bills"] = [
        {
            "tariff": b.tariff,
            "currency": b.currency,
            "total": str(b.total),
            "energy_j": b.energy_j,
            "demand_interval_s": b.demand_interval_s,
            "peak_kw": str(round(Decimal(b.peak_kw.numerator) / Decimal(b.peak_kw.denominator), 3)),
            "peak_window_start": b.peak_window_start,
            "lines": [
                {
                    "kind": ln.kind,
                    "label": ln.label,
                    "unit": ln.unit,
                    "amount": str(ln.amount),
                    "rate": None if ln.rate is None else str(ln.rate),
                }
                for ln in b.lines
            ],
        }
        for b in month.site_bills
    ]
    return record


def _sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def settle_to_directory(
    *,
    telemetry: duckdb.DuckDBPyConnection,
    tariffs: Sequence[Tariff],
    tariff_sources: Sequence[tuple[int, str, bytes]],
    assignments: Sequence[Assignment],
    fees: FeeSchedule,
    period: str,
    zone: str,
    pass_through_demand: bool,
    root: Path,
    key: SigningKey,
    site_id: str,
    now: int,
) -> SettledMonth:
    """Settle `period` (YYYY-MM, local to `zone`) and write the next revision under `root`."""
    year, month_no = parse_period(period)
    bp = BillingPeriod.month(year, month_no, zone)
    columns = energy_columns(telemetry, bp.start, bp.end)
    month = settle_month(
        year=year,
        month=month_no,
        tz=zone,
        tariffs=tariffs,
        columns=columns,
        assignments=assignments,
        fees=fees,
        pass_through_demand=pass_through_demand,
    )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    previous = latest_revision(root, period)
    revision = 1 if previous is None else int(_REVISION.match(previous.name)[2]) + 1  # type: ignore[index]
    final = root / f"{period}-r{revision}"
    tmp = root / f".{period}-r{revision}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "inputs").mkdir(parents=True)
    try:
        inputs = _write_inputs(
            tmp / "inputs", telemetry, bp.start, bp.end, tariffs, tariff_sources, assignments, fees
        )
        record = _settlement_record(month)
        outputs = {
            "settlement.json": json.dumps(record, indent=2, sort_keys=True).encode("utf-8") + b"\n",
            "invoices.csv": _csv_bytes(INVOICE_COLUMNS, [list(r.values()) for r in invoice_rows(month)]),
            "invoices.json": json.dumps(
                {"notice": NO_MONEY_NOTICE, "invoices": record["invoices"]}, indent=2, sort_keys=True
            ).encode("utf-8")
            + b"\n",
        }
        for name, data in outputs.items():
            (tmp / name).write_bytes(data)
        evidence = build_evidence(
            subject=f"energy settlement {period} (revision {revision})",
            period={"start": bp.start, "end": bp.end, "month": period, "zone": zone},
            inputs=inputs,
            outputs=outputs,
            generated_at=now,
            site_id=site_id,
            key=key,
            notice=NO_MONEY_NOTICE,
        )
        (tmp / "evidence.json").write_bytes(evidence)
        for path in tmp.rglob("*"):
            if path.is_file():
                with path.open("rb") as f:
                    os.fsync(f.fileno())
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SettledMonth(path=final, revision=revision, month=month)


def _write_inputs(
    folder: Path,
    telemetry: duckdb.DuckDBPyConnection,
    start: int,
    end: int,
    tariffs: Sequence[Tariff],
    tariff_sources: Sequence[tuple[int, str, bytes]],
    assignments: Sequence[Assignment],
    fees: FeeSchedule,
) -> list[EvidenceInput]:
    energy = folder / "energy_15m.csv"
    telemetry.execute(
        f"""COPY (SELECT miner_id, interval_start, joules, covered_s, uncovered_s, estimated_s
                 FROM energy_15m WHERE interval_start >= {int(start)} AND interval_start < {int(end)}
                 ORDER BY miner_id, interval_start)
            TO '{energy.as_posix().replace("'", "''")}' (HEADER, DELIMITER ',')"""
    )
    digest, size = _sha256_file(energy)
    out = [
        EvidenceInput(
            name="inputs/energy_15m.csv",
            sha256=digest,
            size_bytes=size,
            description="metered energy per miner per 15-minute interval (integer joules)",
        )
    ]
    files: dict[str, tuple[bytes, str]] = {}
    rows = [(a.miner_id, a.customer_id, a.start, "" if a.end is None else a.end) for a in assignments]
    files["assignments.csv"] = (
        _csv_bytes(("miner_id", "customer_id", "valid_from", "valid_to"), sorted(rows, key=str)),
        "miner ownership over time, [valid_from, valid_to) in UTC epoch seconds",
    )
    for tariff_id, fmt, data in tariff_sources:
        ext = "json" if fmt == "urdb" else "toml"
        files[f"tariff-{tariff_id}.{ext}"] = (data, f"tariff {tariff_id} as imported ({fmt})")
    for tariff in tariffs:
        if isinstance(tariff.energy, RealTimeEnergy):
            series = tariff.energy.prices
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", series.source or "prices")
            files[f"prices-{name}.csv"] = (
                _csv_bytes(
                    ("interval_start", "interval_s", "price_per_kwh"),
                    [
                        (s, series.interval_s, str(p))
                        for s, p in zip(series.starts, series.prices_per_kwh, strict=True)
                    ],
                ),
                f"real-time prices ({series.source})",
            )
    files["fees.json"] = (
        json.dumps(_fees_record(fees), indent=2, sort_keys=True).encode("utf-8") + b"\n",
        "the site's fee schedule",
    )
    for name, (data, description) in files.items():
        (folder / name).write_bytes(data)
        out.append(input_from_bytes(f"inputs/{name}", data, description))
    return out


def _fees_record(fees: FeeSchedule) -> dict[str, Any]:
    facility: dict[str, str] | None = None
    if isinstance(fees.facility, Pue):
        facility = {"pue": str(fees.facility.factor)}
    elif isinstance(fees.facility, FacilityAdder):
        facility = {"per_kwh": str(fees.facility.per_kwh), "description": fees.facility.description}
    return {
        "currency": fees.currency,
        "facility": facility,
        "adders": [{"description": a.description, "per_kwh": str(a.per_kwh)} for a in fees.adders],
        "fixed_fees": [
            {
                "description": f.description,
                "amount": str(f.amount),
                "customers": None if f.customers is None else sorted(f.customers),
            }
            for f in fees.fixed_fees
        ],
        "service_fee_pct": str(fees.service_fee_pct),
        "tax_pct": str(fees.tax_pct),
    }
