"""Keeps the site energy aggregates (hourly/daily/monthly kWh, cost, peak demand, CO2) fresh.

Wiring only: the arithmetic is `gateway.energy.aggregates` (pure) and the table work is
`gateway.store.site_energy`, which runs on the telemetry writer thread. Every 15 minutes the recent past
(`[energy] site_energy_lookback_s`, where late energy lands) is recomputed; at start the previous and current
local months are, so a gateway that was down comes back with complete months.

Cost needs a tariff in force over the whole window; while there is none (a new site, or a gap in the history)
the figures are computed without cost rather than not at all, and that is logged once.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.config import Settings
from gateway.energy.bill import BillingPeriod
from gateway.energy.carbon import CarbonFactor
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.tariffs import TariffError
from gateway.store.energy_state import tariff_history
from gateway.store.site_energy import ensure_schema, refresh_site_energy
from gateway.store.telemetry import TelemetryStore

log = logging.getLogger(__name__)


class SiteEnergyService:
    def __init__(self, settings: Settings, store: TelemetryStore, state_path: Path, clock: Clock) -> None:
        self._settings = settings
        self._store = store
        self._state_path = state_path
        self._clock = clock
        energy = settings.energy
        self._carbon = (
            CarbonFactor(
                kg_per_kwh=energy.carbon_kg_per_kwh,
                source=energy.carbon_factor_source,
                year=energy.carbon_factor_year,
            )
            if energy.carbon_kg_per_kwh is not None and energy.carbon_factor_year is not None
            else None
        )
        self._warned_no_price = False

    def start(self) -> Future[Any]:
        """Create the tables and catch up: from where the site sums stop (less the usual lookback, for energy
        that landed late), but no further back than the start of the previous local month. A first start
        on an existing site recomputes both months; a restart after a short stop reads only what it missed
        (a 10,000-miner month is ~29 M rows of energy_15m: not something to re-read at every start)."""
        self._store.run(ensure_schema).result()
        now = int(self._clock.now())
        tz = self._settings.site.timezone
        current = BillingPeriod.month(*_year_month(now, tz), tz)
        since = BillingPeriod.month(*_year_month(current.start - 1, tz), tz).start
        rows = self._store.query("SELECT max(interval_start) AS last FROM site_energy_15m")
        last = rows[0]["last"] if rows else None
        if last is not None:
            since = max(since, int(last) - self._settings.energy.site_energy_lookback_s)
        return self._refresh(since, now, now)

    def refresh(self) -> Future[Any]:
        now = int(self._clock.now())
        return self._refresh(now - self._settings.energy.site_energy_lookback_s, now, now)

    def _refresh(self, since: int, until: int, now: int) -> Future[Any]:
        tz = self._settings.site.timezone
        price_fn = self._price_fn(since, until)
        currency = self._settings.energy.currency
        carbon = self._carbon
        return self._store.run(
            lambda conn: refresh_site_energy(
                conn,
                since=since,
                until=until,
                now=now,
                tz=tz,
                price_fn=price_fn,
                carbon=carbon,
                currency=currency,
            )
        )

    def _price_fn(self, since: int, until: int) -> Callable[[int], Decimal] | None:
        """The tariff-backed price over the months the refresh rebuilds, or None (figures without cost)."""
        tz = self._settings.site.timezone
        start = BillingPeriod.month(*_year_month(since, tz), tz).start
        end = BillingPeriod.month(*_year_month(until, tz), tz).end
        try:
            conn = sqlite3.connect(f"file:{self._state_path}?mode=ro", uri=True)
            try:
                history = tariff_history(
                    conn,
                    start=start,
                    end=end,
                    demand_interval_s=self._settings.energy.demand_interval_min * 60,
                )
            finally:
                conn.close()
            if not history:
                raise TariffError("no tariff in force (hashinsight tariff import / activate)")
            price = energy_price_fn(history, tz)
            for ts in range(start, min(end, until - until % 900), 900):  # fail here, not mid-refresh
                price(ts)
            return price
        except (TariffError, sqlite3.Error) as err:
            if not self._warned_no_price:
                log.warning("site energy figures without cost: %s", err)
                self._warned_no_price = True
            return None


def _year_month(ts: int, tz: str) -> tuple[int, int]:
    local = datetime.fromtimestamp(ts, ZoneInfo(tz))
    return local.year, local.month
