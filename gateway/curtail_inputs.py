"""What the curtailment planner needs from the site's stores, besides prices: who owns which miner now
(state.db assignments) and the demand charge at stake (the active tariff in state.db, the month's peak so
far from `site_energy_15m` in DuckDB).

I/O only; the arithmetic is in `curtail_request` (pure). Each reader degrades to "not modelled" with a
reason rather than failing the plan: a plan without a demand charge is still a plan, a missing plan is the
fail policy. An unknown peak is never taken as 0 kW, which would make the planner pay the demand rate on
the whole load and shed miners for nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb

from gateway.curtail_request import PERIOD_S, Change, Demand, demand_rate, peak_kw_so_far
from gateway.energy.contracts import month_containing
from gateway.energy.tariffs import TariffError
from gateway.store.energy_state import EnergyStateError, assignments_between, tariff_history

Query = Callable[[str, Sequence[Any]], list[dict[str, Any]]]


def owners_at(conn: sqlite3.Connection, now: int) -> dict[str, str]:
    """miner -> customer owning it at `now` (assignment history, else the customer set at registration)."""
    return {a.miner_id: a.customer_id for a in assignments_between(conn, now, now + 1)}


def read_demand(
    conn: sqlite3.Connection, query: Query | None, *, now: int, tz: str, demand_interval_s: int
) -> Demand:
    """The demand rate in force and the local month's metered peak so far; no charge, with the reason, when
    either cannot be known."""
    if query is None:
        return Demand(note="demand not modelled: this gateway has no metered site energy reader")
    month = month_containing(now, tz)
    try:
        rows = query(
            "SELECT interval_start, energy_j FROM site_energy_15m"
            " WHERE interval_start >= ? AND interval_start <= ?",
            [month.start, now],
        )
    except duckdb.Error as err:  # the site-energy refresh has not created its table yet
        return Demand(note=f"demand not modelled: no metered site energy ({type(err).__name__})")
    peak_kw = peak_kw_so_far(
        ((int(r["interval_start"]), int(r["energy_j"])) for r in rows),
        now=now,
        tz=tz,
        interval_s=demand_interval_s,
    )
    try:
        history = tariff_history(conn, start=now, end=now + 1, demand_interval_s=demand_interval_s)
    except (TariffError, EnergyStateError) as err:
        return Demand(peak_kw_so_far=peak_kw, note=f"demand not modelled: the active tariff: {err}")
    rate, note = demand_rate(history, now=now, tz=tz, peak_kw=peak_kw)
    return Demand(rate_per_kw=rate, peak_kw_so_far=peak_kw, note=f"{note}; month peak so far {peak_kw:g} kW")


def recent_changes(
    conn: sqlite3.Connection, class_of: Mapping[str, str], *, start: int, back_periods: int
) -> list[Change]:
    """The starts/stops the executor made from `back_periods` before period `start` until now, per
    miner's current class: its recorded sleep/wake actions that were sent and not found wanting
    (`failed` or `not_verified` did not change the miner). Drift corrections are left out: they restore
    the intended state rather than change it. Survives restarts (the actions are in state.db)."""
    rows = conn.execute(
        "SELECT ts, miner_id, action FROM curtail_actions WHERE ts >= ? AND reason IN ('plan', 'override')"
        " AND status NOT IN ('failed', 'not_verified') ORDER BY id",
        (start - max(back_periods, 0) * PERIOD_S,),
    ).fetchall()
    return [
        Change(ts=int(ts), class_key=class_of[miner], delta=1 if action == "wake" else -1)
        for ts, miner, action in rows
        if miner in class_of and action in ("sleep", "wake")
    ]
