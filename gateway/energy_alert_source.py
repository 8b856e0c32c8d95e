"""Feeds contract and price findings into the health cycle's single `AlertLifecycle.apply` call.

The figures behind them move every 15 minutes, not every poll: `refresh()` (run after each site energy
refresh) reads the month so far from DuckDB and the tariff in force from state.db, and `findings()` (called
every cycle by `HealthMonitor`) evaluates them against the clock, which is cheap. A refresh that fails keeps
the previous figures and logs once; no alert ever fires from a figure we could not read.

Per-customer contracts count the energy of the miners the customer owns *now* over the whole month (a
miner moved mid-month moves its month-to-date with it); settlement, not this early warning, splits energy
at the instant of the change.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Collection
from pathlib import Path

import duckdb

from gateway.clock import Clock
from gateway.config import Settings
from gateway.energy.contracts import Contract, MonthToDate, month_containing, month_to_date
from gateway.energy.energy_alerts import EnergyAlertSettings, energy_findings
from gateway.energy.price_alerts import PeakWarningSettings, PriceThresholdSettings
from gateway.energy.tariffs import Tariff, TariffError, tariff_at
from gateway.energy.units import J_PER_KWH
from gateway.rules.findings import Finding
from gateway.store.energy_state import tariff_history
from gateway.store.telemetry import TelemetryStore

__all__ = ["EnergyAlertSource", "alert_settings", "contracts_from"]

log = logging.getLogger(__name__)


def contracts_from(settings: Settings) -> list[Contract]:
    return [
        Contract(
            id=c.id,
            monthly_energy_j=None if c.monthly_kwh is None else int(c.monthly_kwh * J_PER_KWH),
            demand_limit_kw=c.demand_limit_kw,
            customer_id=c.customer_id,
            warn_pct=c.warn_pct,
            crit_pct=c.crit_pct,
        )
        for c in settings.energy.contracts
    ]


def alert_settings(settings: Settings) -> EnergyAlertSettings:
    a = settings.energy.alerts
    peak = (
        PeakWarningSettings(
            lead_s=a.peak_lead_min * 60,
            peak_periods=None if a.peak_periods is None else frozenset(a.peak_periods),
        )
        if a.peak_lead_min
        else None
    )
    price = (
        PriceThresholdSettings(
            high_per_kwh=a.price_high_per_kwh, clear_below_per_kwh=a.price_clear_below_per_kwh
        )
        if a.price_high_per_kwh is not None and a.price_clear_below_per_kwh is not None
        else None
    )
    return EnergyAlertSettings(site_target=f"site:{settings.site.id}", peak=peak, price=price)


class EnergyAlertSource:
    def __init__(self, settings: Settings, store: TelemetryStore, state_path: Path, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._state_path = state_path
        self._clock = clock
        self._contracts = contracts_from(settings)
        self._alert_settings = alert_settings(settings)
        self._so_far: dict[str, MonthToDate] = {}
        self._tariff: Tariff | None = None
        self._warned = False

    @property
    def active(self) -> bool:
        s = self._alert_settings
        return bool(self._contracts) or s.peak is not None or s.price is not None

    def refresh(self) -> None:
        """Re-read the month so far per contract and the tariff in force. Blocking (DuckDB, SQLite):
        call it from a worker thread or a scheduler job, not the event loop."""
        if not self.active:
            return
        now = int(self._clock.now())
        tz = self._settings.site.timezone
        month = month_containing(now, tz)
        try:
            tariff = self._read_tariff(now, month.start, month.end)
            so_far = {c.id: self._month_to_date(c, month.start, now) for c in self._contracts}
        except (TariffError, sqlite3.Error, duckdb.Error, RuntimeError, ValueError) as err:
            if not self._warned:
                log.warning("energy alerts: figures not refreshed: %s", err)
                self._warned = True
            return
        self._tariff, self._so_far = tariff, so_far

    def findings(self, now: int, tracked: Collection[tuple[str, str]]) -> list[Finding]:
        contracts = [(c, self._so_far[c.id]) for c in self._contracts if c.id in self._so_far]
        return energy_findings(
            contracts=contracts,
            tariff=self._tariff,
            tz=self._settings.site.timezone,
            now=now,
            settings=self._alert_settings,
            tracked=tracked,
        )

    def _read_tariff(self, now: int, start: int, end: int) -> Tariff | None:
        conn = sqlite3.connect(f"file:{self._state_path}?mode=ro", uri=True)
        try:
            demand_s = self._settings.energy.demand_interval_min * 60
            history = tariff_history(
                conn, start=start, end=max(end, now + 86_400), demand_interval_s=demand_s
            )
        except TariffError:
            return None
        finally:
            conn.close()
        try:
            return tariff_at(history, now) if history else None
        except TariffError:
            return None

    def _month_to_date(self, contract: Contract, start: int, now: int) -> MonthToDate:
        if contract.customer_id is None:
            rows = self._store.query(
                "SELECT interval_start, energy_j FROM site_energy_15m"
                " WHERE interval_start >= ? AND interval_start <= ?",
                [start, now],
            )
            records = [(int(r["interval_start"]), int(r["energy_j"])) for r in rows]
        else:
            conn = sqlite3.connect(f"file:{self._state_path}?mode=ro", uri=True)
            try:
                miners = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM miners WHERE customer_id = ?", (contract.customer_id,)
                    )
                ]
            finally:
                conn.close()
            records = []
            if miners:
                marks = ", ".join("?" for _ in miners)
                rows = self._store.query(
                    f"SELECT interval_start, SUM(joules) AS j FROM energy_15m WHERE interval_start >= ? AND"
                    f" interval_start <= ? AND miner_id IN ({marks}) GROUP BY interval_start",
                    [start, now, *miners],
                )
                records = [(int(r["interval_start"]), int(r["j"] or 0)) for r in rows]
        return month_to_date(records, month=month_containing(now, self._settings.site.timezone), now=now)
