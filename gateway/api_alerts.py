"""Alert endpoints of the local API: what the CLI (`hashinsight alerts ...`) and the TUI call.

    GET  /api/alerts?state=open|unacked|acked|suppressed|resolved|all&severity=P0,P1
                    &miner_id=...&rule=...&limit=500
    GET  /api/alerts/{id}               the alert and its history
    POST /api/alerts/{id}/ack           {"actor": "...", "note": "..."}
    POST /api/alerts/{id}/suppress      {"actor": "...", "until": EPOCH | "ISO 8601 + zone", "reason": "..."}
    POST /api/alerts/{id}/unsuppress    {"actor": "..."}
    POST /api/alerts/{id}/resolve       {"actor": "...", "note": "..."}
    POST /api/alerts/ack                {"actor": "...", "ids": [1, 2, 3], "note": "..."}  (all or nothing)

Errors are JSON `{"error": "..."}`: 400 for a malformed request (bad id, time, filter, missing actor),
404 for an unknown alert, 409 for an action the alert's state does not allow (acking a resolved one).

Writes go straight to the lifecycle on the event loop thread, like the poll cycle's own call: each is
one short SQLite transaction, and calling from one thread keeps state.db's single writer. The API
binds 127.0.0.1 and trusts `actor` as given: it records who says they acted, for the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.model import AlertConflict, AlertError, AlertEvent, AlertNotFound
from gateway.alerts.queries import DEFAULT_LIMIT, StateFilter
from gateway.rules.findings import Severity

ALERTS_KEY: web.AppKey[AlertLifecycle] = web.AppKey("alerts", AlertLifecycle)
MAX_BATCH = 1000
MAX_LIMIT = 5000


def add_alert_routes(app: web.Application, alerts: AlertLifecycle) -> None:
    app[ALERTS_KEY] = alerts
    app.router.add_get("/api/alerts", _list)
    app.router.add_post("/api/alerts/ack", _ack_batch)
    app.router.add_get("/api/alerts/{id}", _show)
    app.router.add_post("/api/alerts/{id}/ack", _ack)
    app.router.add_post("/api/alerts/{id}/suppress", _suppress)
    app.router.add_post("/api/alerts/{id}/unsuppress", _unsuppress)
    app.router.add_post("/api/alerts/{id}/resolve", _resolve)


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _now() -> int:
    return int(time.time())


# --- parsing -----------------------------------------------------------------------------------------


def parse_severities(raw: list[str]) -> set[Severity]:
    out = set()
    for item in (part.strip() for value in raw for part in value.split(",")):
        if not item:
            continue
        try:
            out.add(Severity[item.upper()])
        except KeyError:
            raise _error(web.HTTPBadRequest, f"unknown severity {item!r} (P0, P1, P2 or P3)") from None
    return out


def _alert_id(raw: Any) -> int:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**63:
        raise _error(web.HTTPBadRequest, f"alert ids are positive integers, not {raw!r}")
    return raw


def parse_until(raw: Any) -> int:
    """Epoch seconds, or ISO 8601 with a zone ('2025-01-31T18:00:00Z'): a time without a zone would
    silently mean the gateway's zone, not the technician's."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if not 0 < raw < 2**53:
            raise _error(web.HTTPBadRequest, f"until {raw} is not a plausible epoch time")
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            when = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            raise _error(web.HTTPBadRequest, f"until {raw!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise _error(web.HTTPBadRequest, f"until {raw!r} needs a zone, e.g. {raw.strip()}Z") from None
        return int(when.timestamp())
    raise _error(web.HTTPBadRequest, "until is required: epoch seconds or an ISO 8601 time with a zone")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _error(web.HTTPBadRequest, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _error(web.HTTPBadRequest, "the body must be a JSON object")
    actor = body.get("actor")
    if not isinstance(actor, str) or not actor.strip():
        raise _error(web.HTTPBadRequest, "actor is required: who is doing this")
    return body


def _run(action: Callable[[], list[AlertEvent]]) -> list[AlertEvent]:
    try:
        return action()
    except AlertNotFound as err:
        raise _error(web.HTTPNotFound, str(err)) from None
    except AlertConflict as err:
        raise _error(web.HTTPConflict, str(err)) from None
    except AlertError as err:
        raise _error(web.HTTPBadRequest, str(err)) from None


def _reply(alerts: AlertLifecycle, alert_id: int, events: list[AlertEvent], now: int) -> web.Response:
    alert = alerts.get(alert_id)
    assert alert is not None
    return web.json_response({"alert": alert.to_dict(now), "events": [event_dict(e) for e in events]})


def event_dict(event: AlertEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "alert_id": event.alert_id,
        "ts": event.ts,
        "actor": event.actor,
        "detail": event.detail,
    }


# --- handlers ----------------------------------------------------------------------------------------


async def _list(request: web.Request) -> web.Response:
    query = request.query
    try:
        state = StateFilter(query.get("state", "open"))
    except ValueError:
        choices = ", ".join(s.value for s in StateFilter)
        raise _error(web.HTTPBadRequest, f"state must be one of {choices}") from None
    try:
        limit = int(query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = -1
    if not 1 <= limit <= MAX_LIMIT:
        raise _error(web.HTTPBadRequest, f"limit must be an integer from 1 to {MAX_LIMIT}")
    now = _now()
    rows = request.app[ALERTS_KEY].list_alerts(
        now=now,
        state=state,
        severities=parse_severities(query.getall("severity", [])),
        miner_id=query.get("miner_id") or None,
        rule_id=query.get("rule") or query.get("rule_id") or None,
        limit=limit,
    )
    return web.json_response({"ts": now, "count": len(rows), "alerts": [a.to_dict(now) for a in rows]})


async def _show(request: web.Request) -> web.Response:
    alerts = request.app[ALERTS_KEY]
    alert_id = _alert_id(request.match_info["id"])
    alert = alerts.get(alert_id)
    if alert is None:
        raise _error(web.HTTPNotFound, f"no alert {alert_id}")
    body = alert.to_dict(_now())
    body["history"] = [entry.to_dict() for entry in alerts.history(alert_id)]
    return web.json_response(body)


async def _ack(request: web.Request) -> web.Response:
    alerts, alert_id, now = request.app[ALERTS_KEY], _alert_id(request.match_info["id"]), _now()
    body = await _body(request)
    events = _run(lambda: alerts.ack(alert_id, body["actor"], now, body.get("note", "")))
    return _reply(alerts, alert_id, events, now)


async def _ack_batch(request: web.Request) -> web.Response:
    alerts, now = request.app[ALERTS_KEY], _now()
    body = await _body(request)
    raw_ids = body.get("ids")
    if not isinstance(raw_ids, list) or not raw_ids:
        raise _error(web.HTTPBadRequest, "ids must be a non-empty list of alert ids")
    if len(raw_ids) > MAX_BATCH:
        raise _error(web.HTTPBadRequest, f"at most {MAX_BATCH} ids per batch")
    ids = [_alert_id(raw) for raw in raw_ids]
    events = _run(lambda: alerts.ack_many(ids, body["actor"], now, body.get("note", "")))
    rows = [alerts.get(i) for i in dict.fromkeys(ids)]
    return web.json_response(
        {
            "alerts": [a.to_dict(now) for a in rows if a is not None],
            "events": [event_dict(e) for e in events],
        }
    )


async def _suppress(request: web.Request) -> web.Response:
    alerts, alert_id, now = request.app[ALERTS_KEY], _alert_id(request.match_info["id"]), _now()
    body = await _body(request)
    until = parse_until(body.get("until"))
    reason = body.get("reason", "")
    events = _run(lambda: alerts.suppress(alert_id, body["actor"], until, reason, now))
    return _reply(alerts, alert_id, events, now)


async def _unsuppress(request: web.Request) -> web.Response:
    alerts, alert_id, now = request.app[ALERTS_KEY], _alert_id(request.match_info["id"]), _now()
    body = await _body(request)
    events = _run(lambda: alerts.unsuppress(alert_id, body["actor"], now))
    return _reply(alerts, alert_id, events, now)


async def _resolve(request: web.Request) -> web.Response:
    alerts, alert_id, now = request.app[ALERTS_KEY], _alert_id(request.match_info["id"]), _now()
    body = await _body(request)
    events = _run(lambda: alerts.resolve(alert_id, body["actor"], now, body.get("note", "")))
    return _reply(alerts, alert_id, events, now)
