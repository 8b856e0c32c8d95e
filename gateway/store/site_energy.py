"""Site energy aggregates materialised in the telemetry DuckDB: `site_energy_15m` (site sums per 15-minute
interval) and `site_energy` (hourly, daily and monthly figures in the site's local calendar).

Why two tables: the per-miner `energy_15m` of a month of a large site is tens of millions of rows, its site
sums a few thousand. A refresh re-reads `energy_15m` only for the window it is asked about (the recent past,
where late energy lands) and rebuilds the enclosing local months' figures from the small table, so a month's
cost and peak are always computed from all of its intervals, exactly, without re-reading the month.

Idempotent and recomputable: a refresh rewrites `site_energy_15m` in its window from `energy_15m` and every
figure of the enclosing months, in one transaction; refreshing `[first row, now)` rebuilds everything. The
computation (gateway.energy.aggregates, pure) runs before anything is written, so a bad row or a missing
price fails the refresh and changes nothing. A figure keeps its `rev` and `computed_at` when a refresh
produces exactly the same figure; otherwise `rev` goes up by one (what sync needs for hourly revisions).

Runs on the telemetry writer thread: `store.run(lambda conn: refresh_site_energy(conn, ...))`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np

from gateway.energy.aggregates import (
    INTERVAL_S,
    Level,
    PeakDemand,
    PriceFn,
    SiteFigure,
    SiteInterval,
    aggregate,
    merge_site_intervals,
    months_covering,
    site_intervals,
)
from gateway.energy.carbon import CarbonAmount, CarbonFactor
from gateway.energy.settlement_model import IntervalColumns, minor_units
from gateway.energy.settlement_output import EnergyFigure

__all__ = [
    "SCHEMA",
    "SELECT_FIGURES",
    "RefreshResult",
    "ensure_schema",
    "figures_from_rows",
    "read_figures",
    "refresh_site_energy",
]

CHUNK_S = 86_400  # energy_15m is read a UTC day at a time: 960,000 rows for 10,000 miners

SCHEMA = """
CREATE TABLE IF NOT EXISTS site_energy_15m (
    interval_start BIGINT PRIMARY KEY,
    miners INTEGER NOT NULL,
    energy_j BIGINT NOT NULL,
    estimated_j BIGINT NOT NULL,
    covered_s BIGINT NOT NULL,
    uncovered_s BIGINT NOT NULL,
    estimated_s BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS site_energy (
    level VARCHAR NOT NULL,
    start_ts BIGINT NOT NULL,
    end_ts BIGINT NOT NULL,
    label VARCHAR NOT NULL,
    tz VARCHAR NOT NULL,
    intervals INTEGER NOT NULL,
    intervals_with_data INTEGER NOT NULL,
    energy_j BIGINT NOT NULL,
    estimated_j BIGINT NOT NULL,
    miner_s BIGINT NOT NULL,
    covered_s BIGINT NOT NULL,
    uncovered_s BIGINT NOT NULL,
    estimated_s BIGINT NOT NULL,
    peak_interval_start BIGINT,
    peak_energy_j BIGINT,
    peak_estimated_j BIGINT,
    peak_miner_s BIGINT,
    peak_covered_s BIGINT,
    peak_uncovered_s BIGINT,
    peak_estimated_s BIGINT,
    cost DECIMAL(38, 6),
    currency VARCHAR NOT NULL,
    co2_kg DECIMAL(38, 6),
    co2_kg_per_kwh VARCHAR,
    co2_source VARCHAR,
    co2_year INTEGER,
    rev INTEGER NOT NULL,
    computed_at BIGINT NOT NULL,
    PRIMARY KEY (level, start_ts)
);
"""

_SITE_15M = ("interval_start", "miners", "energy_j", "estimated_j", "covered_s", "uncovered_s", "estimated_s")
_ENERGY = ("energy_j", "estimated_j", "miner_s", "covered_s", "uncovered_s", "estimated_s")
_FIGURE = (
    "level", "start_ts", "end_ts", "label", "tz", "intervals", "intervals_with_data", *_ENERGY,
    "peak_interval_start", *(f"peak_{f}" for f in _ENERGY), "cost", "currency", "co2_kg", "co2_kg_per_kwh",
    "co2_source", "co2_year", "rev", "computed_at",
)  # fmt: skip
_CASTS = {"cost": "::DECIMAL(38, 6)", "co2_kg": "::DECIMAL(38, 6)"}

SELECT_FIGURES = (
    f"SELECT {', '.join(_FIGURE)} FROM site_energy "
    "WHERE level = ? AND start_ts >= ? AND start_ts < ? ORDER BY start_ts"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshResult:
    """What one refresh rewrote: `[start, end)` of `site_energy_15m` and the figures of the local months
    `[months_start, months_end)`; `changed` of them differ from what was stored (their `rev` went up)."""

    start: int
    end: int
    months_start: int
    months_end: int
    site_intervals: int
    figures: int
    changed: int


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(SCHEMA)


def _read_energy_chunk(conn: duckdb.DuckDBPyConnection, start: int, end: int) -> tuple[SiteInterval, ...]:
    cols = conn.execute(
        """
        SELECT dense_rank() OVER (ORDER BY miner_id) - 1 AS miner, miner_id, interval_start, joules,
               covered_s, uncovered_s, estimated_s
        FROM energy_15m WHERE interval_start >= ? AND interval_start < ?
        """,
        [start, end],
    ).fetchnumpy()
    miner = np.asarray(cols["miner"], dtype=np.int64)
    if len(miner) == 0:
        return ()
    ranks, first = np.unique(miner, return_index=True)
    ids = tuple(str(v) for v in np.asarray(cols["miner_id"], dtype=object)[first])
    if len(ranks) != len(ids) or int(ranks[-1]) != len(ids) - 1:
        raise RuntimeError("energy_15m: miner ranks are not dense")  # DuckDB's dense_rank contract
    return site_intervals(
        IntervalColumns(
            miner_ids=ids,
            miner=miner,
            interval_start=np.asarray(cols["interval_start"], dtype=np.int64),
            joules=np.asarray(cols["joules"], dtype=np.int64),
            covered_s=np.asarray(cols["covered_s"], dtype=np.int64),
            uncovered_s=np.asarray(cols["uncovered_s"], dtype=np.int64),
            estimated_s=np.asarray(cols["estimated_s"], dtype=np.int64),
        )
    )


def _read_site_15m(
    conn: duckdb.DuckDBPyConnection, start: int, end: int, skip: tuple[int, int]
) -> list[SiteInterval]:
    rows = conn.execute(
        f"SELECT {', '.join(_SITE_15M)} FROM site_energy_15m "
        "WHERE interval_start >= ? AND interval_start < ? "
        "AND NOT (interval_start >= ? AND interval_start < ?) ORDER BY interval_start",
        [start, end, *skip],
    ).fetchall()
    return [SiteInterval(**dict(zip(_SITE_15M, (int(v) for v in r), strict=True))) for r in rows]


def _energy(row: Mapping[str, Any], prefix: str = "") -> EnergyFigure:
    return EnergyFigure(**{f: int(row[prefix + f]) for f in _ENERGY})


def figures_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[SiteFigure]:
    """`site_energy` rows (e.g. `TelemetryStore.query(SELECT_FIGURES, [level, since, until])`) -> figures,
    exactly as `aggregate` produced them (money back at the currency's minor unit)."""
    out = []
    for row in rows:
        currency = str(row["currency"])
        cost = row["cost"]
        if cost is not None:
            cost = Decimal(cost).quantize(Decimal(1).scaleb(-minor_units(currency)))
        co2 = None
        if row["co2_kg"] is not None:
            factor = CarbonFactor(
                kg_per_kwh=Decimal(row["co2_kg_per_kwh"]), source=row["co2_source"], year=int(row["co2_year"])
            )
            co2 = CarbonAmount(kg=Decimal(row["co2_kg"]).quantize(Decimal("0.001")), factor=factor)
        peak = None
        if row["peak_interval_start"] is not None:
            peak = PeakDemand(interval_start=int(row["peak_interval_start"]), energy=_energy(row, "peak_"))
        out.append(
            SiteFigure(
                level=Level(row["level"]),
                start=int(row["start_ts"]),
                end=int(row["end_ts"]),
                label=str(row["label"]),
                tz=str(row["tz"]),
                intervals=int(row["intervals"]),
                intervals_with_data=int(row["intervals_with_data"]),
                energy=_energy(row),
                peak=peak,
                cost=cost,
                currency=currency,
                co2=co2,
            )
        )
    return out


def read_figures(conn: duckdb.DuckDBPyConnection, level: Level, since: int, until: int) -> list[SiteFigure]:
    """The stored figures of `level` starting in `[since, until)`, from a cursor of any thread (none until
    the first refresh: readers never create tables, the writer does)."""
    found = conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'site_energy'").fetchone()
    if not found or not found[0]:
        return []
    result = conn.execute(SELECT_FIGURES, [str(level), since, until])
    names = [d[0] for d in result.description or ()]
    return figures_from_rows(dict(zip(names, r, strict=True)) for r in result.fetchall())


def _row(fig: SiteFigure, rev: int, computed_at: int) -> tuple[Any, ...]:
    e, p = fig.energy, fig.peak
    peak: tuple[Any, ...] = (None,) * 7
    if p is not None:
        peak = (p.interval_start, *(getattr(p.energy, f) for f in _ENERGY))
    co2: tuple[Any, ...] = (None,) * 4
    if fig.co2 is not None:
        f = fig.co2.factor
        co2 = (str(fig.co2.kg), str(f.kg_per_kwh), f.source, f.year)
    return (
        str(fig.level), fig.start, fig.end, fig.label, fig.tz, fig.intervals, fig.intervals_with_data,
        *(getattr(e, f) for f in _ENERGY), *peak, None if fig.cost is None else str(fig.cost), fig.currency,
        *co2, rev, computed_at,
    )  # fmt: skip


def _columns(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, np.ndarray[Any, Any]]:
    out: dict[str, np.ndarray[Any, Any]] = {}
    for i, name in enumerate(names):
        array = np.empty(len(rows), dtype=object)
        array[:] = [r[i] for r in rows]
        out[name] = array
    return out


def _insert(conn: duckdb.DuckDBPyConnection, table: str, names: Sequence[str], rows: Sequence[Any]) -> None:
    if not rows:
        return
    view = f"_{table}_new"
    conn.register(view, _columns(names, rows))
    try:
        select = ", ".join(f"{n}{_CASTS.get(n, '')}" for n in names)
        conn.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} FROM {view}")
    finally:
        conn.unregister(view)


def refresh_site_energy(
    conn: duckdb.DuckDBPyConnection,
    *,
    since: int,
    until: int,
    now: int,
    tz: str,
    price_fn: PriceFn | None = None,
    carbon: CarbonFactor | None = None,
    currency: str = "USD",
) -> RefreshResult:
    """Recompute the site sums of `[since, until)` (widened to the 15-minute grid) from `energy_15m`, then
    every hourly, daily and monthly figure of the local months holding it; figures starting after `now`
    (the rest of the current month) are not stored. Writer thread only."""
    start = since - since % INTERVAL_S
    end = until - until % INTERVAL_S + (INTERVAL_S if until % INTERVAL_S else 0)
    if end <= start:
        raise ValueError(f"empty refresh window [{since}, {until})")
    ensure_schema(conn)
    chunks = (_read_energy_chunk(conn, a, min(a + CHUNK_S, end)) for a in range(start, end, CHUNK_S))
    fresh = merge_site_intervals(chunks)
    months_start, months_end = months_covering(start, end, tz)
    kept = _read_site_15m(conn, months_start, months_end, (start, end))
    horizon = now - now % INTERVAL_S + INTERVAL_S
    figures = aggregate(
        merge_site_intervals((kept, fresh)),
        start=months_start,
        end=months_end,
        tz=tz,
        price_fn=price_fn,
        carbon=carbon,
        currency=currency,
        horizon=horizon,
    ).figures
    stored: dict[tuple[str, int], tuple[SiteFigure, int, int]] = {}
    for level in Level:
        result = conn.execute(SELECT_FIGURES, [str(level), months_start, months_end])
        names = [d[0] for d in result.description or ()]
        for raw in result.fetchall():
            row = dict(zip(names, raw, strict=True))
            (old,) = figures_from_rows([row])
            stored[(str(level), old.start)] = (old, int(row["rev"]), int(row["computed_at"]))
    rows, changed = [], 0
    for fig in figures:
        old_fig, rev, computed_at = stored.get((str(fig.level), fig.start), (None, 0, now))
        if old_fig != fig:
            rev, computed_at, changed = rev + 1, now, changed + 1
        rows.append(_row(fig, rev, computed_at))
    site_rows = [tuple(getattr(iv, f) for f in _SITE_15M) for iv in fresh]
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(
            "DELETE FROM site_energy_15m WHERE interval_start >= ? AND interval_start < ?", [start, end]
        )
        _insert(conn, "site_energy_15m", _SITE_15M, site_rows)
        conn.execute(
            "DELETE FROM site_energy WHERE start_ts >= ? AND start_ts < ?", [months_start, months_end]
        )
        _insert(conn, "site_energy", _FIGURE, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return RefreshResult(
        start=start,
        end=end,
        months_start=months_start,
        months_end=months_end,
        site_intervals=len(site_rows),
        figures=len(rows),
        changed=changed,
    )
