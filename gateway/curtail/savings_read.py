"""The I/O half of the savings adapter: read the executor's verified actions and the miners' profiles from
state.db and the metered energy and same-hour history from DuckDB, then hand them to the pure core in
`savings_input` - and `credits_for_period`, the settlement's curtailment credit lines.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal

import duckdb

from gateway.curtail.savings import Economics
from gateway.curtail.savings_input import (
    BASELINE_DAYS,
    DAY_S,
    FULL_BUCKET_S,
    GRID_S,
    HOUR_S,
    ActionRow,
    EnergyRow,
    HourHistory,
    PriceFn,
    SavingsInput,
    Span,
    build_intervals,
    credits_from_intervals,
    curtailed_spans,
    figures_for,
    grid_pieces,
)
from gateway.devices.profiles import ProfileCatalog
from gateway.energy.settlement_model import Assignment, Credit


def read_actions(state: sqlite3.Connection, *, start: int, end: int) -> tuple[list[ActionRow], int]:
    """Verified sleeps and wakes before `end`: those in `[start, end)` plus each miner's latest before
    `start` (its state then). Also the number of such rows whose ts is not an integer (skipped)."""
    verified = "a.status = 'verified' AND a.action IN ('sleep', 'wake')"
    rows = state.execute(
        f"""
        SELECT a.id, a.miner_id, a.ts, a.action, COALESCE(e.source, a.reason)
        FROM curtail_actions a LEFT JOIN curtail_events e ON e.id = a.event_id
        WHERE {verified} AND typeof(a.ts) = 'integer' AND a.ts < :end AND (a.ts >= :start OR a.ts = (
            SELECT MAX(b.ts) FROM curtail_actions b WHERE b.miner_id = a.miner_id AND b.status = 'verified'
            AND b.action IN ('sleep', 'wake') AND typeof(b.ts) = 'integer' AND b.ts < :start))
        ORDER BY a.miner_id, a.ts, a.id
        """,
        {"start": start, "end": end},
    ).fetchall()
    malformed = state.execute(
        f"SELECT COUNT(*) FROM curtail_actions a WHERE {verified} AND typeof(a.ts) != 'integer'"
    ).fetchone()[0]
    actions = [
        ActionRow(id=int(r[0]), miner_id=str(r[1]), ts=int(r[2]), action=str(r[3]), strategy=str(r[4]))
        for r in rows
    ]
    return actions, int(malformed)


def read_profile_keys(state: sqlite3.Connection) -> dict[str, str | None]:
    return {str(r[0]): r[1] for r in state.execute("SELECT id, profile_key FROM miners")}


def read_energy(telemetry: duckdb.DuckDBPyConnection, spans: Sequence[Span]) -> list[EnergyRow]:
    """The `energy_15m` rows that overlap the spans (a semi-join: each row once)."""
    if not spans:
        return []
    rows = telemetry.execute(
        f"""
        SELECT miner_id, interval_start, joules, covered_s FROM energy_15m e WHERE EXISTS (
            SELECT 1 FROM (SELECT unnest(?::VARCHAR[]) AS miner_id, unnest(?::BIGINT[]) AS lo,
                unnest(?::BIGINT[]) AS hi) s
            WHERE s.miner_id = e.miner_id AND e.interval_start + {GRID_S} > s.lo AND e.interval_start < s.hi)
        """,
        [[s.miner_id for s in spans], [s.start for s in spans], [s.end for s in spans]],
    ).fetchall()
    return [
        EnergyRow(miner_id=r[0], interval_start=int(r[1]), joules=int(r[2]), covered_s=int(r[3]))
        for r in rows
    ]


def read_history(telemetry: duckdb.DuckDBPyConnection, spans: Sequence[Span]) -> list[HourHistory]:
    """Per miner, UTC day and hour: its fully-mining 5-minute buckets in the baseline window, only in
    the hours of day its spans touch (one row per miner in the join keeps it a hash join)."""
    window: dict[str, tuple[int, int, int]] = {}
    for span in spans:
        lo, hi, mask = window.get(span.miner_id, (span.start, span.end, 0))
        for interval_start, _ in grid_pieces(span):
            mask |= 1 << (interval_start % DAY_S // HOUR_S)
            if mask == (1 << 24) - 1:
                break
        window[span.miner_id] = (min(lo, span.start), max(hi, span.end), mask)
    if not window:
        return []
    ids = sorted(window)
    rows = telemetry.execute(
        f"""
        SELECT h.miner_id, h.bucket // {DAY_S} AS day, h.bucket % {DAY_S} // {HOUR_S} AS hour,
               sum(h.power_w), count(*)
        FROM samples_5m h JOIN (SELECT unnest(?::VARCHAR[]) AS miner_id, unnest(?::BIGINT[]) AS lo,
            unnest(?::BIGINT[]) AS hi, unnest(?::BIGINT[]) AS mask) s ON s.miner_id = h.miner_id
        WHERE h.power_w IS NOT NULL AND h.mining_s >= {FULL_BUCKET_S} AND h.bucket >= s.lo
            AND h.bucket < s.hi AND (s.mask >> (h.bucket % {DAY_S} // {HOUR_S})::INTEGER) & 1 = 1
        GROUP BY ALL
        """,
        [
            ids,
            [window[m][0] - window[m][0] % DAY_S - BASELINE_DAYS * DAY_S for m in ids],
            [window[m][1] for m in ids],
            [window[m][2] for m in ids],
        ],
    ).fetchall()
    return [
        HourHistory(miner_id=r[0], day=int(r[1]), hour=int(r[2]), power_sum_w=float(r[3]), buckets=int(r[4]))
        for r in rows
    ]


def load_savings_input(
    *,
    state: sqlite3.Connection,
    telemetry: duckdb.DuckDBPyConnection,
    start: int,
    end: int,
    profiles: ProfileCatalog,
    price_fn: PriceFn | None,
) -> SavingsInput:
    """Read what the gateway recorded for `[start, end)` and build the curtailed intervals."""
    actions, malformed = read_actions(state, start=start, end=end)
    spans, _ = curtailed_spans(actions, start=start, end=end)
    return build_intervals(
        actions=actions,
        energy=read_energy(telemetry, spans),
        history=read_history(telemetry, spans),
        figures=figures_for(read_profile_keys(state), profiles),
        price_fn=price_fn,
        start=start,
        end=end,
        malformed=malformed,
    )


def credits_for_period(
    *,
    state: sqlite3.Connection,
    telemetry: duckdb.DuckDBPyConnection,
    start: int,
    end: int,
    assignments: Sequence[Assignment],
    price_fn: Callable[[int], Decimal] | None,
    profiles: ProfileCatalog,
    hashprice_usd_per_th_day: Decimal,
    pool_fee_pct: Decimal,
    credit_per_kwh: Decimal | None,
) -> tuple[Credit, ...]:
    """Settlement credit lines for `[start, end)`: one per customer, on the conservative saving.

    Hashprice and pool fee (percent: 2 for 2 %) are checked but do not change a credit: a credit is what
    the customer's energy did not cost, not what their mining forwent (that is the savings report's)."""
    Economics(hashprice_usd_per_th_day=hashprice_usd_per_th_day, pool_fee=pool_fee_pct / 100)
    if price_fn is None and credit_per_kwh is None:
        raise ValueError("curtailment credits need a price (a tariff in force) or a credit rate per kWh")
    savings = load_savings_input(
        state=state, telemetry=telemetry, start=start, end=end, profiles=profiles, price_fn=price_fn
    )
    return credits_from_intervals(savings.intervals, assignments=assignments, credit_per_kwh=credit_per_kwh)
