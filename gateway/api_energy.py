"""Energy endpoints of the local API, and the month settlement they share with `hashinsight settle`.

    POST /api/energy/settle   {"period": "YYYY-MM", "site_id": "..." (optional check)}
                              -> {"period", "revision", "path", "summary": {...}, "notice"}
    GET  /api/energy/settle   -> {"settling": ["YYYY-MM", ...], "site_id", "data_dir"}: the months in
                              progress, and whose files this gateway holds (the CLI settles here only then)
    GET  /api/energy/site?level=hour|day|month&since=&until=
                              -> {"level", "since", "until", "tz", "truncated", "figures": [...]}

Why settle through the API: DuckDB lets one process hold telemetry.duckdb, and while the gateway runs that
process is the gateway (ARCHITECTURE §4). So the gateway settles on its own store, in a worker thread (a
month of a large site is seconds of work that must never stall polling), reading energy through a cursor
inside one read transaction: the drafts and the `inputs/energy_15m.csv` they are signed with come from the
same snapshot even while poll batches keep landing. `settle_period` is the one code path: the CLI calls it
directly on the files when no gateway runs, and the route calls it here, so the revision directory and the
summary are the same either way.

Errors are JSON `{"error": "..."}`: 400 for a malformed request (body, period, level, times), 409 when the
month is already being settled or the caller expected another site, 413 for an oversized body, 422 when the
site's data cannot settle that month (no tariff in force, unreadable key), 500 when settling broke on I/O
(nothing written), 503 when MAX_QUEUED months are already waiting. Invoices are drafts and evidence:
nothing here moves, holds or pays out money.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

import duckdb
from aiohttp import web

from gateway.config import Settings
from gateway.energy.aggregates import Level
from gateway.energy.settlement_model import NO_MONEY_NOTICE
from gateway.settle_service import (
    SettleFailed,
    SettleOutcome,
    SettleRefused,
    check_period,
    settle_period,
    shown,
)
from gateway.store.site_energy import SELECT_FIGURES, figures_from_rows
from gateway.store.telemetry import TelemetryStore

__all__ = ["add_energy_routes"]

MAX_BODY_BYTES = 4096  # {"period": "2024-06"} is 21 bytes; anything near this is not a settle request
MAX_FIGURES = 10_000  # 13 months of hours
MAX_PARAM_CHARS = 40
WRITER_WAIT_S = 600.0  # the writer may be busy with a rollup; a dead writer must not hang the request
DEFAULT_SPAN_S = {Level.HOUR: 86_400, Level.DAY: 31 * 86_400, Level.MONTH: 366 * 86_400}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_NOT_AN_OBJECT = 'the body must be a JSON object like {"period": "2024-06"}'
MAX_QUEUED = 4  # months waiting or running; more is a script gone wrong, not a site's bookkeeping


# --- routes ---------------------------------------------------------------------------------------------


@runtime_checkable
class EnergyView(Protocol):
    """What these routes need from the running gateway (runtime.Gateway has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def store(self) -> TelemetryStore: ...


@dataclass(slots=True)
class _EnergyApi:
    """Per-app state (no module globals): the months queued or being settled, and their own one-thread
    executor. One thread because a month of a large site takes a large share of memory (two months settle
    one after the other), and its own so queued settlements never hold the default executor's threads
    that the history and figure queries need."""

    view: EnergyView
    settling: dict[str, asyncio.Future[SettleOutcome]] = field(default_factory=dict)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="settle")
    )

    async def drain(self, _app: web.Application) -> None:
        """On API cleanup (gateway stop, before the store closes): finish the settlement in progress so
        its revision is complete, and drop the queued ones (their requests are gone with the server)."""
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)


ENERGY_KEY: web.AppKey[_EnergyApi] = web.AppKey("energy", _EnergyApi)


def add_energy_routes(app: web.Application, view: object) -> None:
    """Register the routes. `view` is the gateway; checked here so a view without settings, data dir
    or store fails at start, not at the first request."""
    if not isinstance(view, EnergyView):
        raise TypeError(f"{type(view).__name__} lacks settings, data_dir or store: cannot serve /api/energy")
    api = _EnergyApi(view)
    app[ENERGY_KEY] = api
    app.on_cleanup.append(api.drain)
    app.router.add_post("/api/energy/settle", _settle)
    app.router.add_get("/api/energy/settle", _settling)
    app.router.add_get("/api/energy/site", _site)


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _too_large(size: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        MAX_BODY_BYTES,
        size,
        text=json.dumps({"error": f"the body is over {MAX_BODY_BYTES} bytes"}),
        content_type="application/json",
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large(request.content_length)
    raw = bytearray()  # read to the end or just past the cap: one read() may return any part of it
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large(len(raw))
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _error(web.HTTPBadRequest, _NOT_AN_OBJECT) from None
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, _NOT_AN_OBJECT)
    return body


async def _settle(request: web.Request) -> web.Response:
    api = request.app[ENERGY_KEY]
    body = await _body(request)
    try:
        period = check_period(body.get("period"))
    except ValueError as err:
        raise _error(web.HTTPBadRequest, str(err)) from None
    settings, data_dir, store = api.view.settings, api.view.data_dir, api.view.store
    expected = body.get("site_id")
    if expected is not None and expected != settings.site.id:
        raise _error(
            web.HTTPConflict,
            f"this gateway settles site {settings.site.id!r}, not {shown(expected)}; check --config / --api",
        )
    if period in api.settling:
        raise _error(web.HTTPConflict, f"{period} is already being settled; wait for that revision")
    if len(api.settling) >= MAX_QUEUED:
        raise _error(web.HTTPServiceUnavailable, f"{len(api.settling)} months are queued; try again later")
    future = asyncio.get_running_loop().run_in_executor(
        api.executor, _settle_on_store, settings, data_dir, store, period
    )
    api.settling[period] = future
    # The month stays in flight until its thread is done, even if this request is cancelled (client gone):
    # a second settle must not start while the first is still writing its revision.
    future.add_done_callback(lambda done: _finished(api, period, done))
    try:
        outcome = await asyncio.shield(future)
    except SettleRefused as err:
        raise _error(web.HTTPUnprocessableEntity, str(err)) from None
    except SettleFailed as err:
        raise _error(web.HTTPInternalServerError, str(err)) from None
    return web.json_response(
        {
            "period": outcome.period,
            "revision": outcome.revision,
            "path": outcome.path,
            "summary": outcome.as_record(),
            "notice": NO_MONEY_NOTICE,
        }
    )


def _finished(api: _EnergyApi, period: str, done: asyncio.Future[SettleOutcome]) -> None:
    api.settling.pop(period, None)
    if not done.cancelled():
        done.exception()  # retrieved here: a request that went away must not leave an unlogged error


async def _settling(request: web.Request) -> web.Response:
    """The months being settled right now (a TUI shows them; a script waits on them), and which site and
    data directory this gateway settles (the API binds 127.0.0.1: the caller is on this machine)."""
    api = request.app[ENERGY_KEY]
    return web.json_response(
        {
            "settling": sorted(api.settling),
            "site_id": api.view.settings.site.id,
            "data_dir": str(api.view.data_dir.resolve()),
        }
    )


def _settle_on_store(settings: Settings, data_dir: Path, store: TelemetryStore, period: str) -> SettleOutcome:
    """Worker thread: a cursor of the store's connection (made on the writer thread, its owner) and a
    read-only connection to state.db (WAL: the gateway keeps writing alerts meanwhile)."""
    try:
        cursor: duckdb.DuckDBPyConnection = store.run(lambda conn: conn.cursor()).result(WRITER_WAIT_S)
    except TimeoutError:
        raise SettleRefused(f"the telemetry writer did not answer within {WRITER_WAIT_S:.0f} s") from None
    try:
        state_path = data_dir / "state.db"
        try:
            state = sqlite3.connect(
                f"{state_path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
        except sqlite3.Error as err:
            raise SettleRefused(f"{state_path}: cannot open read-only ({err})") from None
        try:
            return settle_period(
                settings=settings, data_dir=data_dir, state=state, telemetry=cursor, period=period,
                now=int(time.time()),
            )  # fmt: skip
        finally:
            state.close()
    finally:
        cursor.close()


def _instant(raw: str, name: str, zone: str) -> int:
    """UTC epoch seconds, or YYYY-MM-DD meaning local midnight in the site's zone."""
    text = raw  # not stripped: a value with stray bytes is refused, not guessed at
    if len(text) <= 16 and text.isascii() and text.isdigit():
        value = int(text)
        if value < 2**53:
            return value
    elif _DAY.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            pass
        else:
            return int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp())
    raise _error(
        web.HTTPBadRequest,
        f"{name} must be UTC epoch seconds or YYYY-MM-DD (local midnight in {zone}), not {shown(raw)}",
    )


async def _site(request: web.Request) -> web.Response:
    api = request.app[ENERGY_KEY]
    zone = api.view.settings.site.timezone
    query = request.query
    try:
        level = Level(query.get("level", "day"))
    except ValueError:
        choices = ", ".join(str(v) for v in Level)
        raise _error(
            web.HTTPBadRequest, f"level must be one of {choices}, not {shown(query['level'])}"
        ) from None
    until = _instant(query["until"], "until", zone) if "until" in query else int(time.time())
    since = _instant(query["since"], "since", zone) if "since" in query else until - DEFAULT_SPAN_S[level]
    if until <= since:
        raise _error(web.HTTPBadRequest, f"until ({until}) must be after since ({since})")
    rows = await asyncio.to_thread(_read_figures, api.view.store, level, since, until)
    truncated = len(rows) > MAX_FIGURES
    figures = figures_from_rows(rows[:MAX_FIGURES])
    return web.json_response(
        {
            "level": str(level),
            "since": since,
            "until": until,
            "tz": zone,
            "truncated": truncated,
            "figures": [f.as_record() for f in figures],
            "notice": NO_MONEY_NOTICE,
        }
    )


def _read_figures(store: TelemetryStore, level: Level, since: int, until: int) -> list[dict[str, Any]]:
    """Stored figures starting in `[since, until)`; none before the first refresh made the table."""
    exists = store.query("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'site_energy'")
    if not exists or not exists[0]["n"]:
        return []
    return store.query(f"{SELECT_FIGURES} LIMIT {MAX_FIGURES + 1}", [str(level), since, until])
