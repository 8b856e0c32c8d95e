"""The DuckDB telemetry store: tiers `miner_live`, `samples_raw` (24 h), `samples_5m`, `samples_daily`
(forever) and `energy_15m`, written by one thread.

One writer thread owns every write: poll batches, rollups and retention are queued to it, so DuckDB
never sees two writers and a slow rollup delays writes instead of racing them. A poll batch lands in
one transaction: its raw samples, the absolute energy values of the intervals it touched, and the live
rows. Either all of a batch survives a crash or none of it, and because energy rows are absolute (a
function of the raw samples), a batch replayed after a crash cannot count energy twice.

Readers (the local API) use cursors from other threads. Rollups are idempotent: each rewrites its
window from the tier below.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np

from gateway.devices.model import MinerStatus, Sample
from gateway.store.telemetry_schema import RAW_COLUMNS, SCHEMA, sample_columns

log = logging.getLogger(__name__)

BUCKET_5M_S = 300
DAY_S = 86_400
QUEUE_BATCHES = 16  # at 30 s per cycle, eight minutes of writes can wait before the poller is held back


class EnergyRow(Protocol):
    """What the meter emits (gateway.metering.IntervalEnergy satisfies it)."""

    @property
    def miner_id(self) -> str: ...
    @property
    def interval_start(self) -> int: ...
    @property
    def joules(self) -> int: ...
    @property
    def covered_s(self) -> int: ...
    @property
    def uncovered_s(self) -> int: ...
    @property
    def estimated_s(self) -> int: ...
    @property
    def peak_w(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class WriteBatch:
    samples: Sequence[Sample]
    energy: Sequence[EnergyRow] = ()


@dataclass(slots=True)
class WriterStats:
    batches: int = 0
    rows: int = 0
    last_write_s: float = 0.0
    total_write_s: float = 0.0
    errors: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Job:
    run: Callable[[duckdb.DuckDBPyConnection], Any]
    done: Future[Any] = field(default_factory=Future)


class TelemetryStore:
    def __init__(self, path: Path, *, raw_retention_s: int = DAY_S) -> None:
        self.path = path
        self.raw_retention_s = raw_retention_s
        self.stats = WriterStats()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = duckdb.connect(str(path))
        # Days in the daily tier are UTC days; DuckDB would otherwise cast to DATE in the box's zone.
        self._conn.execute("SET TimeZone = 'UTC'")
        self._conn.execute(SCHEMA)
        self._queue: queue.Queue[WriteBatch | _Job | None] = queue.Queue(maxsize=QUEUE_BATCHES)
        self._thread = threading.Thread(target=self._writer, name="telemetry-writer", daemon=True)
        self._thread.start()

    # --- writing -------------------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> None:
        """Queue a batch. Blocks (backpressure) when the writer is far behind: never drops data."""
        self._queue.put(batch)

    def run(self, job: Callable[[duckdb.DuckDBPyConnection], Any]) -> Future[Any]:
        """Run `job(conn)` on the writer thread (rollups, retention); its result arrives in the future."""
        item = _Job(job)
        self._queue.put(item)
        return item.done

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written."""
        try:
            self.run(lambda conn: None).result(timeout=timeout)
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Write what is queued, then stop and checkpoint. SIGTERM ends here: nothing queued is lost."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        try:
            self._conn.execute("CHECKPOINT")
        finally:
            self._conn.close()

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, _Job):
                try:
                    item.done.set_result(item.run(self._conn))
                except Exception as err:  # a failed job must not kill the writer
                    log.exception("telemetry job failed")
                    item.done.set_exception(err)
                continue
            started = time.perf_counter()
            try:
                self._write(item)
            except Exception as err:
                self.stats.errors += 1
                self.stats.last_error = f"{type(err).__name__}: {err}"
                log.exception("telemetry batch of %d samples failed", len(item.samples))
                continue
            elapsed = time.perf_counter() - started
            self.stats.batches += 1
            self.stats.rows += len(item.samples)
            self.stats.last_write_s = elapsed
            self.stats.total_write_s += elapsed

    def _write(self, batch: WriteBatch) -> None:
        conn = self._conn
        samples = batch.samples
        raw = sample_columns(samples)
        raw["good_ts"] = _objects([None if s.status is MinerStatus.OFFLINE else s.ts for s in samples])
        energy = _energy_columns(batch.energy)  # noqa: F841
        conn.execute("BEGIN TRANSACTION")
        try:
            if samples:
                conn.execute(f"INSERT INTO samples_raw SELECT {', '.join(RAW_COLUMNS)} FROM raw")
                # Keep the last good reading time across offline samples (for `stale` after a restart).
                # One live row per miner: the batch's latest sample (a batch may hold several).
                conn.execute(
                    f"""
                    CREATE OR REPLACE TEMP TABLE live_prev AS SELECT miner_id, last_good_ts
                    FROM miner_live WHERE miner_id IN (SELECT miner_id FROM raw);
                    DELETE FROM miner_live WHERE miner_id IN (SELECT miner_id FROM raw);
                    INSERT INTO miner_live
                    SELECT {", ".join("r." + c for c in RAW_COLUMNS)},
                           COALESCE(r.batch_good_ts, p.last_good_ts)
                    FROM (
                        SELECT *, max(good_ts::BIGINT) OVER (PARTITION BY miner_id) AS batch_good_ts
                        FROM raw QUALIFY row_number() OVER (PARTITION BY miner_id ORDER BY ts DESC) = 1
                    ) AS r LEFT JOIN live_prev AS p USING (miner_id);
                    """
                )
            if batch.energy:
                conn.execute(
                    """
                    INSERT OR REPLACE INTO energy_15m
                    SELECT miner_id, interval_start::BIGINT, joules::BIGINT, covered_s::INTEGER,
                           uncovered_s::INTEGER, estimated_s::INTEGER,
                           CASE WHEN covered_s::INTEGER > 0 THEN joules::DOUBLE / covered_s::INTEGER END,
                           peak_w::DOUBLE
                    FROM energy
                    """
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- reading (any thread) ------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._conn.cursor()
        try:
            result = cursor.execute(sql, list(params))
            names = [d[0] for d in result.description or ()]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            cursor.close()

    def recent_samples(self, since_ts: int) -> list[tuple[str, int, float | None, bool | None, str]]:
        """(miner_id, ts, power_w, power_estimated, status) since `since_ts`, in arrival order: what the
        meter needs to rebuild its open intervals after a restart."""
        cursor = self._conn.cursor()
        try:
            rows = cursor.execute(
                "SELECT miner_id, ts, power_w, power_estimated, status FROM samples_raw "
                "WHERE ts >= ? ORDER BY miner_id, rowid",  # arrival order, as the live meter saw them
                [since_ts],
            ).fetchall()
        finally:
            cursor.close()
        return [(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows]

    def size_bytes(self) -> int:
        total = 0
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    # --- maintenance jobs (queued to the writer) -----------------------------------------------------

    def rollup_5m(self, now: int, *, lookback_s: int = 3 * BUCKET_5M_S) -> Future[Any]:
        """Rewrite the 5-minute buckets of the last `lookback_s` from raw samples (idempotent)."""
        start = (now - lookback_s) // BUCKET_5M_S * BUCKET_5M_S

        def job(conn: duckdb.DuckDBPyConnection) -> int:
            conn.execute("BEGIN TRANSACTION")
            conn.execute("DELETE FROM samples_5m WHERE bucket >= ?", [start])
            conn.execute(
                """
                INSERT INTO samples_5m
                SELECT miner_id, ts // 300 * 300 AS bucket, count(*),
                       avg(hashrate_ths), avg(power_w), max(temp_max_c), min(fan_min_rpm),
                       min(boards_active), max(accepted) - min(accepted),
                       (sum(CASE WHEN status = 'mining' THEN 1 ELSE 0 END) * 300 / count(*))::INTEGER
                FROM samples_raw WHERE ts >= ? GROUP BY ALL
                """,
                [start],
            )
            conn.execute("COMMIT")
            return start

        return self.run(job)

    def rollup_daily(self, now: int, *, lookback_days: int = 2) -> Future[Any]:
        """Rewrite the last days (UTC) from the 5-minute tier (idempotent)."""
        start = (now // DAY_S - lookback_days + 1) * DAY_S

        def job(conn: duckdb.DuckDBPyConnection) -> int:
            conn.execute("BEGIN TRANSACTION")
            conn.execute("DELETE FROM samples_daily WHERE day >= to_timestamp(?)::DATE", [start])
            conn.execute(
                """
                INSERT INTO samples_daily
                SELECT miner_id, to_timestamp(bucket)::DATE AS day, sum(samples),
                       avg(hashrate_ths), avg(power_w), max(temp_max_c), sum(accepted_delta)
                FROM samples_5m WHERE bucket >= ? GROUP BY ALL
                """,
                [start],
            )
            conn.execute("COMMIT")
            return start

        return self.run(job)

    def apply_retention(self, now: int) -> Future[Any]:
        cutoff = now - self.raw_retention_s

        def job(conn: duckdb.DuckDBPyConnection) -> int:
            result = conn.execute("DELETE FROM samples_raw WHERE ts < ?", [cutoff]).fetchone()
            return int(result[0]) if result else 0

        return self.run(job)


def _objects(values: Sequence[Any]) -> np.ndarray[Any, Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _energy_columns(rows: Sequence[EnergyRow]) -> dict[str, np.ndarray[Any, Any]]:
    return {
        "miner_id": _objects([r.miner_id for r in rows]),
        "interval_start": _objects([r.interval_start for r in rows]),
        "joules": _objects([r.joules for r in rows]),
        "covered_s": _objects([r.covered_s for r in rows]),
        "uncovered_s": _objects([r.uncovered_s for r in rows]),
        "estimated_s": _objects([r.estimated_s for r in rows]),
        "peak_w": _objects([r.peak_w for r in rows]),
    }
