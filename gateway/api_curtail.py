"""Curtailment endpoints of the local API (what the TUI and CLI read while the gateway runs).

    GET  /api/curtail/plan              the current plan: status, explanation, every period with its
                                        miners on per class, planned kW, price and reason; plus what the
                                        executor follows right now (the plan, or the fail policy and why)
    GET  /api/curtail/events?limit=20   recent executor events, newest first: kW asked vs realised
                                        (from metered power), skips, and each event's actions
    POST /api/curtail/replan            plan now; answers with the new plan

Money, prices and kW are decimal strings (a float on the wire would print differently from the figure the
planner used). Errors are JSON `{"error": "..."}`: 404 when curtailment is off, 400 for a bad query,
503 when no plan could be made (the message says why; the fail policy is in force meanwhile).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from aiohttp import web

from gateway.curtail.executor_store import actions_of, recent_events
from gateway.curtail.plan_model import Plan
from gateway.curtail_service import CurtailService, PlanningError, Targets

VIEW_KEY: web.AppKey[object] = web.AppKey("curtail_view", object)
MAX_EVENTS = 500
_KW = Decimal("0.001")


def add_curtail_routes(app: web.Application, view: object) -> None:
    """`view` is the running gateway; its `curtail` attribute is the service, or None when it is off."""
    app[VIEW_KEY] = view
    app.router.add_get("/api/curtail/plan", _plan)
    app.router.add_get("/api/curtail/events", _events)
    app.router.add_post("/api/curtail/replan", _replan)


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


def _service(request: web.Request) -> CurtailService:
    service = getattr(request.app[VIEW_KEY], "curtail", None)
    if not isinstance(service, CurtailService):
        raise _error(web.HTTPNotFound, "curtailment is off: set [curtail] enabled = true and price_series")
    return service


def _kw(value: float | Decimal) -> str:
    return str(Decimal(str(value)).quantize(_KW, rounding=ROUND_HALF_EVEN))


def plan_json(plan: Plan) -> dict[str, Any]:
    kw_of = {c.key: Decimal(str(c.kw_per_miner)) for c in plan.classes}
    return {
        "created_at": plan.created_at,
        "status": plan.status,
        "solver": plan.solver,
        "solve_s": round(plan.solve_s, 4),
        "objective_usd": None if plan.objective_usd is None else str(plan.objective_usd),
        "lp_bound_usd": None if plan.lp_bound_usd is None else str(plan.lp_bound_usd),
        "explanation": plan.explanation,
        "period_s": plan.period_s,
        "classes": [
            {
                "key": c.key,
                "model": c.model,
                "mode": c.mode,
                "count": c.count,
                "kw_per_miner": _kw(c.kw_per_miner),
                "ths_per_miner": str(Decimal(str(c.ths_per_miner))),
            }
            for c in plan.classes
        ],
        "periods": [
            {
                "start": p.start,
                "on": dict(p.on_by_class),
                "planned_kw": _kw(sum((kw_of[k] * n for k, n in p.on_by_class.items()), Decimal(0))),
                "price_per_kwh": str(p.price_per_kwh),
                "forecast": p.forecast,
                "reason": p.reason,
            }
            for p in plan.periods
        ],
    }


def _targets_json(targets: Targets | None) -> dict[str, Any] | None:
    if targets is None:
        return None
    return {
        "source": targets.source,
        "reason": targets.reason,
        "on": dict(targets.on_by_class),
        "failed_inputs": [i.value for i in targets.failed],
    }


def _state(service: CurtailService) -> dict[str, Any]:
    return {
        "plan": None if service.plan is None else plan_json(service.plan),
        "plan_id": service.plan_id,  # its row in state.db (`hashinsight curtail show`); None: not stored
        "planner_ok": service.planner_ok,
        "last_error": service.last_error,
        "following": _targets_json(service.last_targets),
    }


async def _plan(request: web.Request) -> web.Response:
    return web.json_response(_state(_service(request)))


async def _replan(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        await service.replan()
    except PlanningError as err:
        raise _error(web.HTTPServiceUnavailable, f"no plan: {err}") from None
    return web.json_response(_state(service))


async def _events(request: web.Request) -> web.Response:
    service = _service(request)
    raw = request.query.get("limit", "20")
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_EVENTS):
        raise _error(web.HTTPBadRequest, f"limit must be a whole number 1..{MAX_EVENTS}, not {raw[:20]!r}")
    events = []
    for event in recent_events(service.conn, int(raw)):
        realised = event["realised_kw"]
        events.append(
            {
                **event,
                "asked_kw": _kw(event["asked_kw"]),
                "realised_kw": None if realised is None else _kw(realised),
                "actions": [
                    {k: a[k] for k in ("ts", "miner_id", "action", "reason", "attempt", "status", "detail")}
                    for a in actions_of(service.conn, int(event["id"]))
                ],
            }
        )
    return web.json_response({"events": events})
