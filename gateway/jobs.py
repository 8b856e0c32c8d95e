"""Which maintenance job runs when (APScheduler wiring only; the work lives in the store).

Rollups and retention are queued to the telemetry writer thread, so they never race a poll batch;
each is idempotent, so a job that ran twice (or late, after a restart) rewrites the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.clock import Clock
from gateway.store.telemetry import TelemetryStore

log = logging.getLogger(__name__)


def build_scheduler(
    store: TelemetryStore, clock: Clock, *, site_energy: Callable[[], object] | None = None
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})

    def rollup_5m() -> None:
        store.rollup_5m(int(clock.now()))

    def rollup_daily() -> None:
        store.rollup_daily(int(clock.now()))

    def retention() -> None:
        store.apply_retention(int(clock.now()))

    # Shortly after each 5-minute boundary, once the bucket's last samples have landed.
    scheduler.add_job(rollup_5m, "cron", minute="*/5", second=20, id="rollup_5m")
    scheduler.add_job(rollup_daily, "cron", minute=7, id="rollup_daily")
    scheduler.add_job(retention, "cron", minute=17, id="retention_raw")
    if site_energy is not None:
        # Just after each 15-minute boundary, once the closed interval's energy has been written.
        scheduler.add_job(site_energy, "cron", minute="1,16,31,46", second=30, id="site_energy")
    return scheduler
