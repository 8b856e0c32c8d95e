"""Adopted curtailment plans in state.db (migration 0008): written by the service, read back at start-up
and by `hashinsight curtail show`.

Why persist them: the executor's per-miner memory already survives a restart, but a gateway that forgets
its plan runs on the fail policy until the first re-plan, and the minimum on/off times lose the previous
plan they carry over from. The history is bounded (pruned on every write) because one plan a 15 minutes
is ~3,000 rows a month. A row that cannot be read back (hand-edited, truncated) is an error naming the
plan and field, never a crash: the caller plans afresh.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.curtail.executor_store import transaction
from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan

__all__ = ["PlanStoreError", "current_plan", "plan_from_row", "save_plan"]

_COLUMNS = (
    "id, created_at, period_s, status, solver, solve_s, objective_usd, lp_bound_usd, explanation, "
    "classes, periods"
)


class PlanStoreError(ValueError):
    """A stored plan cannot be read back; the message names the plan id and the field."""


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _classes_json(plan: Plan) -> str:
    return json.dumps(
        [
            {
                "key": c.key,
                "model": c.model,
                "mode": c.mode,
                "count": c.count,
                "ths_per_miner": c.ths_per_miner,
                "kw_per_miner": c.kw_per_miner,
            }
            for c in plan.classes
        ]
    )


def _periods_json(plan: Plan) -> str:
    return json.dumps(
        [
            {
                "start": p.start,
                "on": dict(p.on_by_class),
                "price_per_kwh": str(p.price_per_kwh),
                "forecast": p.forecast,
                "reason": p.reason,
            }
            for p in plan.periods
        ]
    )


def save_plan(conn: sqlite3.Connection, plan: Plan, *, now: int, keep_s: int) -> int:
    """Store `plan` and delete plans made more than `keep_s` before `now`, in one transaction.
    Returns the new row's id. A plan without periods covers nothing and is refused."""
    if not plan.periods:
        raise PlanStoreError("a plan without periods cannot be stored")
    first, last = plan.periods[0].start, plan.periods[-1].start + plan.period_s
    with transaction(conn):
        cursor = conn.execute(
            "INSERT INTO curtail_plans (created_at, first_start, end_ts, period_s, status, solver, solve_s, "
            "objective_usd, lp_bound_usd, explanation, classes, periods) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan.created_at,
                first,
                last,
                plan.period_s,
                plan.status,
                plan.solver,
                plan.solve_s,
                _money(plan.objective_usd),
                _money(plan.lp_bound_usd),
                plan.explanation,
                _classes_json(plan),
                _periods_json(plan),
            ),
        )
        conn.execute("DELETE FROM curtail_plans WHERE created_at < ?", (now - keep_s,))
    return int(cursor.lastrowid or 0)


def current_plan(conn: sqlite3.Connection, now: int) -> tuple[int, Plan] | None:
    """The most recently made stored plan whose periods cover `now`, with its row id; None if none does.
    Raises PlanStoreError when that row cannot be read back."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM curtail_plans WHERE first_start <= ? AND end_ts > ? "
        "ORDER BY created_at DESC, id DESC LIMIT 1",
        (now, now),
    ).fetchone()
    return None if row is None else (int(row[0]), plan_from_row(tuple(row)))


def _field(plan_id: int, name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise PlanStoreError(f"stored plan {plan_id}: {name} is not a {getattr(kind, '__name__', kind)}")
    if not isinstance(value, kind):
        raise PlanStoreError(f"stored plan {plan_id}: {name} is not a {getattr(kind, '__name__', kind)}")
    return value


def _decimal(plan_id: int, name: str, value: Any) -> Decimal:
    try:
        out = Decimal(_field(plan_id, name, value, str))
    except InvalidOperation:
        raise PlanStoreError(f"stored plan {plan_id}: {name} {value[:40]!r} is not a decimal") from None
    if not out.is_finite():
        raise PlanStoreError(f"stored plan {plan_id}: {name} is not finite")
    return out


def plan_from_row(row: tuple[Any, ...]) -> Plan:
    """A `Plan` from a row of `_COLUMNS`; every field checked, so a damaged row is an error, not a plan."""
    plan_id = int(row[0])
    try:
        classes_raw = json.loads(row[9])
        periods_raw = json.loads(row[10])
    except (TypeError, ValueError) as err:
        raise PlanStoreError(f"stored plan {plan_id}: classes/periods are not JSON ({err})") from None
    classes = []
    for i, c in enumerate(_field(plan_id, "classes", classes_raw, list)):
        c = _field(plan_id, f"classes[{i}]", c, dict)
        classes.append(
            MinerClass(
                key=_field(plan_id, f"classes[{i}].key", c.get("key"), str),
                model=_field(plan_id, f"classes[{i}].model", c.get("model"), str),
                mode=_field(plan_id, f"classes[{i}].mode", c.get("mode"), str),
                count=_field(plan_id, f"classes[{i}].count", c.get("count"), int),
                ths_per_miner=float(
                    _field(plan_id, f"classes[{i}].ths_per_miner", c.get("ths_per_miner"), (int, float))
                ),
                kw_per_miner=float(
                    _field(plan_id, f"classes[{i}].kw_per_miner", c.get("kw_per_miner"), (int, float))
                ),
            )
        )
    periods = []
    for i, p in enumerate(_field(plan_id, "periods", periods_raw, list)):
        p = _field(plan_id, f"periods[{i}]", p, dict)
        on = _field(plan_id, f"periods[{i}].on", p.get("on"), dict)
        for key, count in on.items():
            _field(plan_id, f"periods[{i}].on[{key[:40]!r}]", count, int)
        periods.append(
            PeriodPlan(
                start=_field(plan_id, f"periods[{i}].start", p.get("start"), int),
                on_by_class=on,
                reason=_field(plan_id, f"periods[{i}].reason", p.get("reason"), str),
                price_per_kwh=_decimal(plan_id, f"periods[{i}].price_per_kwh", p.get("price_per_kwh")),
                forecast=_field(plan_id, f"periods[{i}].forecast", p.get("forecast"), bool),
            )
        )
    period_s = int(row[2])
    if not periods:
        raise PlanStoreError(f"stored plan {plan_id}: no periods")
    for i in range(1, len(periods)):
        if periods[i].start != periods[i - 1].start + period_s:
            raise PlanStoreError(
                f"stored plan {plan_id}: periods[{i}].start is not {period_s} s after the last"
            )
    return Plan(
        created_at=int(row[1]),
        period_s=period_s,
        classes=tuple(classes),
        periods=tuple(periods),
        status=str(row[3]),
        solver=str(row[4]),
        solve_s=float(row[5]),
        objective_usd=None if row[6] is None else _decimal(plan_id, "objective_usd", row[6]),
        lp_bound_usd=None if row[7] is None else _decimal(plan_id, "lp_bound_usd", row[7]),
        explanation=str(row[8]),
    )
