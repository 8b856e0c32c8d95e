"""The gateway's local HTTP API on 127.0.0.1: what the TUI, the CLI and Prometheus read.

Other processes never open the gateway's databases while it runs (ARCHITECTURE §4); they ask here.
Fleet and miner views come from the poller's memory (no database read on the hot path); history
queries run on a DuckDB cursor in a worker thread so a long query never blocks polling.

    GET /healthz                              200 while cycles complete on time, 503 otherwise
    GET /metrics                              Prometheus text format
    GET /api/fleet                            {"site": ..., "totals": ..., "miners": [...]}
    GET /api/miners/{id}                      the latest sample, availability and last error
    GET /api/miners/{id}/history?tier=raw|5m|daily|energy&from=EPOCH&to=EPOCH
    GET /api/alerts, POST /api/alerts/{id}/ack ...  alert list and human actions (see api_alerts.py)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.api_alerts import add_alert_routes
from gateway.api_curtail import add_curtail_routes
from gateway.api_energy import add_energy_routes
from gateway.devices.model import Sample
from gateway.polling import Availability, PollCoordinator
from gateway.store.state import InventoryRow
from gateway.store.telemetry import TelemetryStore

MAX_HISTORY_ROWS = 20_000
HISTORY_QUERIES = {
    "raw": ("samples_raw", "ts", "ts, status, mode, hashrate_ths, power_w, power_estimated, temp_max_c, "
            "fan_min_rpm, fan_max_rpm, boards_active, accepted, rejected, pool_url"),
    "5m": ("samples_5m", "bucket", "bucket AS ts, samples, hashrate_ths, power_w, temp_max_c, fan_min_rpm, "
           "boards_active_min, accepted_delta, mining_s"),
    "daily": ("samples_daily", "epoch(day)::BIGINT", "epoch(day)::BIGINT AS ts, samples, hashrate_ths, "
              "power_w, temp_max_c, accepted_delta"),
    "energy": ("energy_15m", "interval_start", "interval_start AS ts, joules, covered_s, uncovered_s, "
               "estimated_s, avg_w, peak_w"),
}  # fmt: skip


class GatewayView(Protocol):
    """What the API needs from the running gateway."""

    @property
    def site_id(self) -> str: ...
    @property
    def site_name(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def poller(self) -> PollCoordinator: ...
    @property
    def store(self) -> TelemetryStore: ...
    @property
    def inventory(self) -> Mapping[str, InventoryRow]: ...
    @property
    def alerts(self) -> AlertLifecycle: ...

    def db_sizes(self) -> Mapping[str, int]: ...

    def extra_metrics(self) -> str:
        """Prometheus lines of other services (rules, alerts, notifier)."""
        ...


@dataclass(frozen=True, slots=True)
class ApiConfig:
    host: str
    port: int


VIEW_KEY: web.AppKey[GatewayView] = web.AppKey("gateway", GatewayView)


def miner_summary(row: InventoryRow, sample: Sample | None, availability: Availability) -> dict[str, Any]:
    return {
        "id": row.id,
        "ip": row.ip,
        "make": row.make,
        "model": row.model,
        "firmware": row.family,
        "customer_id": row.customer_id,
        "availability": availability.value,
        # An offline miner is reported offline, not with the status of its last good reading (which
        # stays visible under `sample` in the per-miner view).
        "status": "offline"
        if availability is Availability.OFFLINE
        else (sample.status.value if sample else None),
        "mode": sample.mode.value if sample and sample.mode else None,
        "ts": sample.ts if sample else None,
        "hashrate_ths": sample.hashrate_ths if sample else None,
        "expected_ths": sample.expected_ths if sample else None,
        "power_w": sample.power_w if sample else None,
        "power_source": sample.power_source.value if sample and sample.power_source else None,
        "temp_max_c": sample.temp_max_c if sample else None,
        "boards_active": sample.boards_active if sample else None,
        "boards_total": len(sample.boards) if sample else None,
        "fans_rpm": list(sample.fans_rpm) if sample else [],
        "pool_url": sample.pool_url if sample else None,
    }


def fleet(view: GatewayView, now: float) -> dict[str, Any]:
    states = view.poller.states()
    miners = []
    by_availability: dict[str, int] = {a.value: 0 for a in Availability}
    hashrate = power = 0.0
    for miner_id, row in view.inventory.items():
        state = states.get(miner_id)
        availability = view.poller.availability(miner_id, now)
        by_availability[availability.value] += 1
        sample = state.last_sample if state else None
        if sample is not None and availability in (Availability.OK, Availability.FAILING):
            hashrate += sample.hashrate_ths or 0.0
            power += sample.power_w or 0.0
        miners.append(miner_summary(row, sample, availability))
    last = view.poller.totals.last
    return {
        "site": {"id": view.site_id, "name": view.site_name},
        "ts": int(now),
        "totals": {
            "miners": len(miners),
            "by_availability": by_availability,
            "hashrate_ths": round(hashrate, 3),
            "power_kw": round(power / 1000, 3),
            "last_cycle": None if last is None else {
                "started_at": int(last.started_at), "duration_s": round(last.duration_s, 3),
                "succeeded": last.succeeded, "failed": last.failed,
                "errors_by_kind": dict(last.errors_by_kind),
            },
        },
        "miners": miners,
    }  # fmt: skip


async def _healthz(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    last = view.poller.totals.last
    now = time.time()
    interval = view.poller.settings.interval_s
    age = now - (last.started_at + last.duration_s) if last else now - view.started_at
    healthy = age <= 3 * interval
    body = {"status": "ok" if healthy else "degraded", "last_cycle_age_s": round(age, 1)}
    return web.json_response(body, status=200 if healthy else 503)


async def _fleet(request: web.Request) -> web.Response:
    return web.json_response(fleet(request.app[VIEW_KEY], time.time()))


def _miner_row(request: web.Request) -> InventoryRow:
    view = request.app[VIEW_KEY]
    miner_id = request.match_info["id"]
    row = view.inventory.get(miner_id)
    if row is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no miner {miner_id!r} in the inventory"}),
            content_type="application/json",
        )
    return row


async def _miner(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    row = _miner_row(request)
    state = view.poller.states().get(row.id)
    sample = state.last_sample if state else None
    body = miner_summary(row, sample, view.poller.availability(row.id))
    body["sample"] = sample.to_dict() if sample else None
    body["last_error"] = state.last_error if state else None
    body["consecutive_failures"] = state.failures if state else 0
    body["last_good_ts"] = state.last_good_ts if state else None
    return web.json_response(body)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _history(request: web.Request) -> web.Response:
    view = request.app[VIEW_KEY]
    row = _miner_row(request)
    tier = request.query.get("tier", "raw")
    if tier not in HISTORY_QUERIES:
        raise _bad_request(f"tier must be one of {', '.join(HISTORY_QUERIES)}")
    now = int(time.time())
    try:
        start = int(request.query.get("from", now - 3600))
        end = int(request.query.get("to", now))
    except ValueError:
        raise _bad_request("from and to are UTC epoch seconds") from None
    if end < start:
        raise _bad_request("to is before from")
    table, key, columns = HISTORY_QUERIES[tier]
    sql = (
        f"SELECT {columns} FROM {table} WHERE miner_id = ? AND {key} >= ? AND {key} < ? "
        f"ORDER BY 1 LIMIT {MAX_HISTORY_ROWS + 1}"
    )
    rows = await asyncio.to_thread(view.store.query, sql, [row.id, start, end])
    truncated = len(rows) > MAX_HISTORY_ROWS
    return web.json_response(
        {"miner_id": row.id, "tier": tier, "from": start, "to": end, "truncated": truncated,
         "rows": rows[:MAX_HISTORY_ROWS]},
        dumps=_dumps,
    )  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def metrics_text(view: GatewayView, now: float) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP hashinsight_{name} {help_text}")
        lines.append(f"# TYPE hashinsight_{name} {kind}")
        for labels, value in samples:
            lines.append(f"hashinsight_{name}{labels} {value}")

    poller = view.poller
    last = poller.totals.last
    counts: dict[str, int] = {a.value: 0 for a in Availability}
    for miner_id in view.inventory:
        counts[poller.availability(miner_id, now).value] += 1
    metric(
        "miners",
        "gauge",
        "Miners in the inventory by availability.",
        [(f'{{availability="{k}"}}', v) for k, v in counts.items()],
    )
    metric("poll_cycles_total", "counter", "Poll cycles completed.", [("", poller.totals.cycles)])
    metric(
        "poll_cycle_duration_seconds",
        "gauge",
        "Wall time of the last poll cycle.",
        [("", round(last.duration_s, 4) if last else 0.0)],
    )
    metric(
        "poll_cycle_lateness_seconds",
        "gauge",
        "How late the last cycle started.",
        [("", round(last.lateness_s, 4) if last else 0.0)],
    )
    metric(
        "poll_errors_total",
        "counter",
        "Failed miner reads by error kind.",
        [(f'{{kind="{k}"}}', v) for k, v in sorted(poller.totals.errors_by_kind.items())],
    )
    metric(
        "telemetry_queue_depth",
        "gauge",
        "Write batches waiting for the telemetry writer.",
        [("", view.store.queue_depth)],
    )
    metric(
        "telemetry_last_write_seconds",
        "gauge",
        "Time to write the last batch.",
        [("", round(view.store.stats.last_write_s, 4))],
    )
    metric(
        "telemetry_write_errors_total",
        "counter",
        "Failed telemetry batches.",
        [("", view.store.stats.errors)],
    )
    metric(
        "db_size_bytes",
        "gauge",
        "Size of the gateway's databases on disk.",
        [(f'{{db="{k}"}}', v) for k, v in view.db_sizes().items()],
    )
    return "\n".join(lines) + "\n" + view.extra_metrics()  # fmt: skip


async def _metrics(request: web.Request) -> web.Response:
    text = metrics_text(request.app[VIEW_KEY], time.time())
    # The Prometheus text exposition format is identified by its version parameter.
    return web.Response(
        body=text.encode(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    )


def build_app(view: GatewayView) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[VIEW_KEY] = view
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/fleet", _fleet)
    app.router.add_get("/api/miners/{id}", _miner)
    app.router.add_get("/api/miners/{id}/history", _history)
    add_alert_routes(app, view.alerts)
    add_curtail_routes(app, view)
    add_energy_routes(app, view)
    return app


async def start_api(view: GatewayView, config: ApiConfig) -> tuple[web.AppRunner, int]:
    """Serve the API; returns the runner and the port actually bound (config.port 0 = any)."""
    runner = web.AppRunner(build_app(view), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port
