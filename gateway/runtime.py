"""Build the gateway's object graph from Settings, start its services in order, stop them in reverse.

Start: raise the open-files limit; open and check state.db and telemetry.duckdb; restore the meter's
open intervals from the raw tier (so a restart neither loses nor double-counts energy); build one
driver per inventory row; start the poller, the maintenance jobs and the local API.
Stop (SIGTERM): stop polling (a cycle in flight hands over what it has read), write every queued
batch, checkpoint, close. Nothing read is lost on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.notify import Notifier
from gateway.api import ApiConfig, start_api
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.curtail.executor import Executor
from gateway.curtail_service import CurtailService, executor_settings
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.model import FirmwareFamily, MinerStatus, Sample, Source
from gateway.devices.profiles import ProfileCatalog, load_profiles
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.energy.energy_alerts import policy_lookup as energy_policy_lookup
from gateway.energy_alert_source import EnergyAlertSource
from gateway.health import HealthMonitor
from gateway.jobs import build_scheduler
from gateway.metering import INTERVAL_S, Meter
from gateway.oslimits import raise_open_files_limit, tune_garbage_collector
from gateway.polling import CycleStats, PollCoordinator
from gateway.rules.catalog import Rule
from gateway.site_energy_service import SiteEnergyService
from gateway.store.state import InventoryRow, list_miners, open_state
from gateway.store.telemetry import TelemetryStore, WriteBatch

log = logging.getLogger(__name__)
INVENTORY_CHECK_S = 5.0


class Gateway:
    """One site's gateway. Satisfies the local API's GatewayView."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        clock: Clock | None = None,
        profiles: ProfileCatalog | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.clock: Clock = clock or SystemClock()
        self.profiles = profiles or load_profiles()
        self.site_id = settings.site.id
        self.site_name = settings.site.name
        self.started_at = self.clock.now()
        self.inventory: dict[str, InventoryRow] = {}
        self.api_port: int | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._api: web.AppRunner | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._state: sqlite3.Connection | None = None
        self._data_version = -1
        self._drivers: dict[str, BaseDriver] = {}
        self.curtail: CurtailService | None = None

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        before, after, hard = raise_open_files_limit()
        log.info("open-files limit: soft %d -> %d (hard %d)", before, after, hard)
        gc_before, gc_after = tune_garbage_collector()
        log.info("garbage collector thresholds: %s -> %s", gc_before, gc_after)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._state = open_state(self.data_dir / "state.db")
        # Lifecycle and notifier share state.db's one connection (the single writer): a transition,
        # its history and its notification rows commit together.
        self.rule_table = self.settings.rules.table(known_models=[p.key for p in self.profiles])
        self.alerts = AlertLifecycle(
            self._state,
            energy_policy_lookup(self._policy_for),
            enqueue=lambda conn, events, now: self.notifier.enqueue(conn, events, now),
        )
        self.notifier = Notifier(
            self.settings.notifications,
            self._state,
            site_id=self.site_id,
            clock=self.clock,
            is_suppressed=self.alerts.is_suppressed,
        )
        # The executor exists even with curtailment off: its intentions (e.g. from `curtail apply`) are what
        # the rules engine must know so that a planned sleep raises no alert.
        self.executor = Executor(self._state, {}, self.clock, executor_settings(self.settings.curtail))
        self.health = HealthMonitor(
            site_id=self.site_id,
            rules=self.rule_table,
            lifecycle=self.alerts,
            profiles=self.profiles,
            baselines_path=self.data_dir / "baselines.npz",
            extra_findings=lambda now, pairs: self.energy_alerts.findings(now, pairs),
            intended=self.executor.intended_states,
        )
        retention_s = int(self.settings.storage.raw_retention_h * 3600)
        self.store = TelemetryStore(self.data_dir / "telemetry.duckdb", raw_retention_s=retention_s)
        self.meter = self._restore_meter()
        connector = aiohttp.TCPConnector(limit=self.settings.polling.concurrency, force_close=True)
        self._session = aiohttp.ClientSession(connector=connector)
        self.poller = PollCoordinator(self.settings.polling, {}, self.clock, self._on_cycle)
        self._reload_inventory(force=True)
        for row in self.store.query("SELECT miner_id, last_good_ts FROM miner_live"):
            self.poller.restore(row["miner_id"], row["last_good_ts"])
        if self.settings.curtail.enabled:
            self.curtail = CurtailService(
                self.settings.curtail,
                conn=self._state,
                executor=self.executor,
                clock=self.clock,
                profiles=self.profiles,
                inventory=lambda: self.inventory,
                poller=self.poller,
                query=self.store.query,
                timezone=self.settings.site.timezone,
                demand_interval_s=self.settings.energy.demand_interval_min * 60,
            )
        state_path = self.data_dir / "state.db"
        self.site_energy = SiteEnergyService(self.settings, self.store, state_path, self.clock)
        self.energy_alerts = EnergyAlertSource(self.settings, self.store, state_path, self.clock)
        self.site_energy.start().add_done_callback(lambda _: self.energy_alerts.refresh())

        def site_energy_job() -> None:
            self.site_energy.refresh().result(timeout=600)
            self.energy_alerts.refresh()

        self._scheduler = build_scheduler(self.store, self.clock, site_energy=site_energy_job)
        self._scheduler.start()
        self._api, self.api_port = await start_api(
            self, ApiConfig(host=self.settings.api.host, port=self.settings.api.port)
        )
        log.info(
            "gateway %s: %d miners, polling every %gs, local API on http://%s:%d",
            self.site_id, len(self.inventory), self.settings.polling.interval_s,
            self.settings.api.host, self.api_port,
        )  # fmt: skip
        self._tasks = [
            asyncio.create_task(self.poller.run(self._stop), name="poller"),
            asyncio.create_task(self._watch_inventory(), name="inventory"),
            asyncio.create_task(self.notifier.run(self._stop), name="notifier"),
        ]
        if self.curtail is not None:
            self._tasks.append(asyncio.create_task(self.curtail.run(self._stop), name="curtail"))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A task that died of an exception must not stop the shutdown (the store would never be
            # flushed and closed): log it and go on.
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("task %s had failed; shutting down regardless", task.get_name())
        if self.curtail is not None:
            try:
                await self.curtail.stop()
            except Exception:
                log.exception("curtailment did not stop cleanly; shutting down regardless")
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._api is not None:
            await self._api.cleanup()
        if self._session is not None:
            await self._session.close()
        try:
            self.health.save()
        except OSError as err:
            log.warning("could not save baselines: %s", err)
        await asyncio.to_thread(self.store.close)  # writes every queued batch first
        if self._state is not None:
            self._state.close()
        log.info("gateway stopped cleanly")

    async def wait(self) -> None:
        await self._stop.wait()

    def request_stop(self) -> None:
        self._stop.set()

    # --- the pipeline ----------------------------------------------------------------------------------

    def _on_cycle(self, samples: list[Sample], stats: CycleStats) -> None:
        energy = self.meter.feed(samples)
        self.store.submit(WriteBatch(samples, energy))
        if self.curtail is not None:
            try:  # starts the executor's tick as its own task: read-back can take minutes
                self.curtail.on_cycle()
            except Exception:
                log.exception("curtailment could not start this cycle's tick; it runs again next cycle")
        try:
            events = self.health.evaluate_cycle(self.poller, self.inventory, int(self.clock.now()))
        except Exception:  # a rules bug must never stop polling or storage
            log.exception("health evaluation failed this cycle; it runs again next cycle")
            return
        if events:
            self.notifier.wake()

    def _policy_for(self, miner_id: str, rule_id: str) -> Rule:
        row = self.inventory.get(miner_id)
        return self.rule_table.rule(rule_id, row.profile_key if row else None)

    def _restore_meter(self) -> Meter:
        max_gap = self.settings.metering.max_gap_s
        since = int(self.clock.now()) - max_gap - 2 * INTERVAL_S
        rows = self.store.recent_samples(since)
        samples = [
            Sample(
                miner_id=miner_id,
                ts=ts,
                status=MinerStatus(status),
                power_w=power,
                power_source=None
                if estimated is None
                else (Source.ESTIMATED if estimated else Source.MEASURED),
            )
            for miner_id, ts, power, estimated, status in rows
        ]
        if samples:
            log.info("meter restored from %d recent samples", len(samples))
        return Meter.restore(samples, max_gap_s=max_gap)

    # --- inventory -------------------------------------------------------------------------------------

    async def _watch_inventory(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(INVENTORY_CHECK_S)
            self._reload_inventory()

    def _reload_inventory(self, *, force: bool = False) -> None:
        """Pick up miners added by `scan --register` or `inventory import` without a restart."""
        assert self._state is not None
        version = self._state.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and not force:
            return
        self._data_version = version
        rows = {row.id: row for row in list_miners(self._state) if row.enabled}
        if rows == self.inventory and not force:
            return
        old = self.inventory
        drivers: dict[str, BaseDriver] = {}
        for miner_id, row in rows.items():
            unchanged = old.get(miner_id) == row and miner_id in self._drivers
            drivers[miner_id] = self._drivers[miner_id] if unchanged else self._driver_for(row)
        self._drivers = drivers
        self.inventory = rows
        self.poller.set_drivers(drivers)
        self.executor.set_drivers(drivers)
        if not force:
            log.info("inventory changed: %d miners", len(rows))

    def _driver_for(self, row: InventoryRow) -> BaseDriver:
        family = FirmwareFamily(row.family)
        creds = self.settings.credentials.get(family)
        context = DriverContext(
            miner_id=row.id,
            endpoint=Endpoint(host=row.ip, rpc_port=row.rpc_port, web_port=row.web_port, v3_port=row.v3_port),
            credentials=Credentials(
                username=creds.username if creds else None, password=creds.password if creds else None
            ),
            limits=RpcLimits(deadline_s=self.settings.polling.deadline_s),
            profiles=self.profiles,
            model_hint=row.model,
            session=self._session,
            wall_clock=self.clock.now,
        )
        return make_driver(family, context)

    # --- GatewayView -----------------------------------------------------------------------------------

    def extra_metrics(self) -> str:
        open_alerts = self.alerts.list_alerts(now=int(self.clock.now()), limit=100_000)
        by_severity: dict[str, int] = {}
        for alert in open_alerts:
            by_severity[alert.severity.name] = by_severity.get(alert.severity.name, 0) + 1
        lines = [
            "# HELP hashinsight_alerts_open Open alerts by severity.",
            "# TYPE hashinsight_alerts_open gauge",
            *(
                f'hashinsight_alerts_open{{severity="{s}"}} {by_severity.get(s, 0)}'
                for s in ("P0", "P1", "P2", "P3")
            ),
            "# HELP hashinsight_rules_evaluation_seconds Time of the last health evaluation.",
            "# TYPE hashinsight_rules_evaluation_seconds gauge",
            f"hashinsight_rules_evaluation_seconds {self.health.last_eval_s:.4f}",
        ]
        return "\n".join(lines) + "\n" + self.notifier.prometheus()

    def db_sizes(self) -> Mapping[str, int]:
        sizes = {"telemetry": self.store.size_bytes()}
        state = self.data_dir / "state.db"
        sizes["state"] = sum(p.stat().st_size for p in (state, state.with_name("state.db-wal")) if p.exists())
        return sizes


async def run_until_stopped(gateway: Gateway, *, duration_s: float | None = None) -> None:
    """Start, serve until stop is requested (or `duration_s` passes), then stop cleanly."""
    await gateway.start()
    try:
        if duration_s is None:
            await gateway.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gateway.wait(), duration_s)
    finally:
        await gateway.stop()
