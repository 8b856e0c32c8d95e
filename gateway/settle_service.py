"""The month settlement that `hashinsight settle` and `POST /api/energy/settle` share: one code path, so
the revision directory and the summary are the same whether the CLI opened the files itself (no gateway
running) or the running gateway settled on its own store.

`state` is read in one SQLite transaction (a concurrent `tariff activate` or `assign` is wholly seen or not at
all) and `telemetry` inside one read transaction (the drafts and the signed `inputs/energy_15m.csv` are one
snapshot while poll batches keep landing). Invoices are drafts and evidence: nothing moves money.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from gateway.config import Settings
from gateway.curtail.savings_read import credits_for_period
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.energy.bill import BillingPeriod
from gateway.energy.invoices import fee_schedule, parse_period, settle_to_directory
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.settlement_model import NO_MONEY_NOTICE, Assignment, Credit
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import Tariff, TariffError
from gateway.site_key import SiteKeyError, load_or_create_site_key
from gateway.store.energy_state import EnergyStateError, assignments_between, tariff_history, tariff_source

__all__ = [
    "SettleFailed",
    "SettleOutcome",
    "SettleRefused",
    "check_period",
    "settle_period",
    "shown",
    "summary_lines",
]


class SettleRefused(ValueError):
    """The site's data cannot settle this month; the message says why and what to do (one line)."""


class SettleFailed(RuntimeError):
    """Settling broke on I/O (disk full, database error); nothing was written (one-line message)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SettleOutcome:
    """What `hashinsight settle` prints about a settled month; kWh and money are exact decimals."""

    period: str
    revision: int
    path: str
    elapsed_ms: int
    site_kwh: Decimal
    coverage_pct: Decimal | None
    estimated_pct: Decimal | None
    drafts: int
    invoiced_total: Decimal
    currency: str
    unassigned_kwh: Decimal

    def as_record(self) -> dict[str, Any]:
        """Wire form: decimals as strings (never floats), like every money figure of the API."""
        return {
            "period": self.period,
            "revision": self.revision,
            "path": self.path,
            "elapsed_ms": self.elapsed_ms,
            "site_kwh": str(self.site_kwh),
            "coverage_pct": None if self.coverage_pct is None else str(self.coverage_pct),
            "estimated_pct": None if self.estimated_pct is None else str(self.estimated_pct),
            "drafts": self.drafts,
            "invoiced_total": str(self.invoiced_total),
            "currency": self.currency,
            "unassigned_kwh": str(self.unassigned_kwh),
            "notice": NO_MONEY_NOTICE,
        }


def check_period(text: object) -> str:
    """A period string safe to name a directory after: exactly YYYY-MM in ASCII digits. (`parse_period`'s
    pattern alone lets through other scripts' digits, e.g. full-width, and a trailing newline.)"""
    if not isinstance(text, str) or len(text) != 7 or not text.isascii():
        raise ValueError(f"period must be YYYY-MM (e.g. 2024-06), not {shown(text)}")
    parse_period(text)
    return text


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The lines `hashinsight settle` prints, from `SettleOutcome.as_record()` - local or over the API."""
    return [
        f"settled {record['period']} (revision {record['revision']}) in {record['elapsed_ms'] / 1000:.1f} s",
        f"site: {record['site_kwh']} kWh ({record['coverage_pct'] or 0} % covered, "
        f"{record['estimated_pct'] or 0} % estimated); {record['drafts']} draft(s), "
        f"{record['invoiced_total']} {record['currency']}; unassigned {record['unassigned_kwh']} kWh",
        f"written to {record['path']}",
        NO_MONEY_NOTICE,
    ]


def settle_period(
    *,
    settings: Settings,
    data_dir: Path,
    state: sqlite3.Connection,
    telemetry: duckdb.DuckDBPyConnection,
    period: str,
    now: int,
) -> SettleOutcome:
    """Settle `period` (YYYY-MM, the site's local month) into the next revision under
    `<data_dir>/settlements/`. `state` is only read; `telemetry` is read inside one transaction, so the
    energy settled and the energy written as evidence are one snapshot. Raises SettleRefused."""
    started = time.perf_counter()
    try:
        year, month = parse_period(check_period(period))
    except ValueError as err:
        raise SettleRefused(str(err)) from None
    zone = settings.site.timezone
    bp = BillingPeriod.month(year, month, zone)
    try:
        tariffs, sources, assignments = _state_inputs(state, bp, settings.energy.demand_interval_min * 60)
    except (EnergyStateError, TariffError, ImportRefused, sqlite3.Error) as err:
        raise SettleRefused(str(err)) from None
    if not tariffs:
        raise SettleRefused(
            f"no tariff in force in {period}: `hashinsight tariff import` one and `tariff activate` it"
        )
    try:
        key = load_or_create_site_key(data_dir)
    except SiteKeyError as err:
        raise SettleRefused(str(err)) from None
    telemetry.execute("BEGIN TRANSACTION")
    try:
        fees = fee_schedule(settings.energy)
        credits = _curtailment_credits(settings, state, telemetry, bp, tariffs, assignments)
        if credits:
            fees = replace(fees, credits=(*fees.credits, *credits))
        settled = settle_to_directory(
            telemetry=telemetry, tariffs=tariffs, tariff_sources=sources, assignments=assignments,
            fees=fees, period=period, zone=zone,
            pass_through_demand=settings.energy.pass_through_demand, root=data_dir / "settlements", key=key,
            site_id=settings.site.id, now=now,
        )  # fmt: skip
    except (TariffError, ValueError) as err:
        raise SettleRefused(str(err)) from None
    except (OSError, duckdb.Error) as err:
        raise SettleFailed(f"settling {period} failed, no revision written: {err}") from None
    finally:
        telemetry.execute("ROLLBACK")  # a read-only snapshot: nothing to commit
    s = settled.month.settlement
    return SettleOutcome(
        period=period,
        revision=settled.revision,
        path=str(settled.path),
        elapsed_ms=round((time.perf_counter() - started) * 1000),
        site_kwh=s.site_energy.kwh,
        coverage_pct=s.site_energy.coverage_pct,
        estimated_pct=s.site_energy.estimated_pct,
        drafts=len(s.invoices),
        invoiced_total=s.invoiced_total,
        currency=s.currency,
        unassigned_kwh=s.unassigned_energy.kwh,
    )


def _curtailment_credits(
    settings: Settings,
    state: sqlite3.Connection,
    telemetry: duckdb.DuckDBPyConnection,
    bp: BillingPeriod,
    tariffs: list[Tariff],
    assignments: list[Assignment],
) -> tuple[Credit, ...]:
    """The customers' curtailment credit lines for the month (`[energy] curtailment_credits`), from the
    executor's verified sleeps and the metered energy: the conservative saving, never more."""
    mode = settings.energy.curtailment_credits
    if mode == "off":
        return ()
    try:
        return credits_for_period(
            state=state,
            telemetry=telemetry,
            start=bp.start,
            end=bp.end,
            assignments=assignments,
            price_fn=energy_price_fn(tariffs, settings.site.timezone) if mode == "cost_saved" else None,
            profiles=load_profiles(),
            hashprice_usd_per_th_day=settings.curtail.hashprice_usd_per_th_day,
            pool_fee_pct=settings.curtail.pool_fee * 100,
            credit_per_kwh=settings.energy.curtailment_credit_per_kwh if mode == "per_kwh" else None,
        )
    except (sqlite3.OperationalError, ProfileError) as err:
        raise SettleRefused(f"curtailment credits cannot be computed: {err}") from None


def _state_inputs(
    state: sqlite3.Connection, bp: BillingPeriod, demand_interval_s: int
) -> tuple[list[Tariff], list[tuple[int, str, bytes]], list[Assignment]]:
    """Tariffs, their source bytes and ownership for the period, read in one SQLite transaction so a
    concurrent `tariff activate` or `assign` is either wholly seen or not at all."""
    state.execute("BEGIN")
    try:
        tariffs = tariff_history(state, start=bp.start, end=bp.end, demand_interval_s=demand_interval_s)
        ids = [
            int(r[0])
            for r in state.execute(
                "SELECT DISTINCT tariff_id FROM tariff_versions WHERE valid_from < ? AND (valid_to IS NULL"
                " OR valid_to > ?) ORDER BY tariff_id",
                (bp.end, bp.start),
            )
        ]
        sources = []
        for tariff_id in ids:
            _, fmt, data, _ = tariff_source(state, tariff_id)
            sources.append((tariff_id, fmt, data))
        assignments = assignments_between(state, bp.start, bp.end)
    finally:
        state.execute("ROLLBACK")
    return tariffs, sources, assignments


MAX_SHOWN_CHARS = 40


def shown(value: object) -> str:
    """A caller's value quoted for an error message, cut short: hostile input must not flood a log."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."
