"""The DuckDB telemetry store on real files in tmp_path: batches, tiers, rollups, retention, shutdown.

Samples are built by hand here (the poller's output is tested in tests/test_polling.py), so every
expected row below can be checked with pencil and paper. Times are on a UTC day boundary:
DAY0 = 1_699_920_000 is 2023-11-14 00:00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from gateway.devices.model import BoardReading, MinerStatus, Sample, Source
from gateway.metering import IntervalEnergy, Meter, meter
from gateway.store.telemetry import QUEUE_BATCHES, TelemetryStore, WriteBatch

DAY0 = 1_699_920_000
DAY1 = DAY0 + 86_400


def mining(miner_id: str, ts: int, **values: Any) -> Sample:
    """A mining sample; `temps` are the two boards' chip temperatures."""
    temps = values.pop("temps", (70.0, 72.0))
    return Sample(
        miner_id=miner_id,
        ts=ts,
        status=MinerStatus.MINING,
        hashrate_ths=values.pop("hashrate_ths", 100.0),
        power_w=values.pop("power_w", 3000.0),
        power_source=values.pop("power_source", Source.MEASURED),
        boards=tuple(
            BoardReading(slot=i, hashrate_ths=50.0, temp_chip_c=t, chips_ok=76, chips_expected=76)
            for i, t in enumerate(temps)
        ),
        fans_rpm=values.pop("fans_rpm", (5000, 5200)),
        accepted=values.pop("accepted", None),
        **values,
    )


def offline(miner_id: str, ts: int) -> Sample:
    return Sample(miner_id=miner_id, ts=ts, status=MinerStatus.OFFLINE, errors=("Unreachable: refused",))


def sleeping(miner_id: str, ts: int) -> Sample:
    return Sample(
        miner_id=miner_id,
        ts=ts,
        status=MinerStatus.SLEEPING,
        hashrate_ths=0.0,
        power_w=20.0,
        power_source=Source.ESTIMATED,
        boards=(BoardReading(slot=0, active=False), BoardReading(slot=1, active=False)),
        accepted=7,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    telemetry = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        yield telemetry
    finally:
        telemetry.close()


def write(store: TelemetryStore, samples: list[Sample], energy: list[Any] | None = None) -> None:
    store.submit(WriteBatch(samples, energy or []))
    assert store.flush()


def rows(store: TelemetryStore, sql: str) -> list[dict[str, Any]]:
    return store.query(sql)


def test_a_batch_lands_in_one_transaction(store: TelemetryStore) -> None:
    """Raw samples, live rows and energy of one batch appear together, with missing values NULL (never
    0). A batch that fails half-way (its energy row breaks a NOT NULL constraint, after the raw insert
    ran) leaves no trace, is counted, and the writer carries on with the next batch."""
    good = [mining("a", DAY0, accepted=10), offline("b", DAY0 + 1)]
    energy = meter([mining("a", DAY0 - 60, power_w=3000.0), good[0]])
    write(store, good, energy)
    raw = rows(store, "SELECT * FROM samples_raw ORDER BY miner_id")
    assert [(r["miner_id"], r["ts"], r["status"]) for r in raw] == [
        ("a", DAY0, "mining"),
        ("b", DAY0 + 1, "offline"),
    ]
    columns = (
        "power_w",
        "power_estimated",
        "temp_max_c",
        "fan_min_rpm",
        "boards_active",
        "chips_ok",
        "accepted",
    )
    assert {c: raw[0][c] for c in columns} == {
        "power_w": 3000.0, "power_estimated": False, "temp_max_c": 72.0, "fan_min_rpm": 5000,
        "boards_active": 2, "chips_ok": 152, "accepted": 10,
    }  # fmt: skip
    assert all(
        raw[1][c] is None for c in ("hashrate_ths", "power_w", "power_estimated", "fan_min_rpm", "accepted")
    )
    assert raw[1]["errors"] == "Unreachable: refused"
    assert [(r["miner_id"], r["ts"]) for r in rows(store, "SELECT * FROM miner_live ORDER BY miner_id")] == [
        ("a", DAY0), ("b", DAY0 + 1)
    ]  # fmt: skip
    assert rows(store, "SELECT miner_id, interval_start, joules, covered_s FROM energy_15m") == [
        {"miner_id": "a", "interval_start": DAY0 - 900, "joules": 3000 * 60, "covered_s": 60}
    ]

    broken = IntervalEnergy(
        miner_id="a", interval_start=DAY0, joules=None, covered_s=30, uncovered_s=0, estimated_s=0, peak_w=1.0
    )
    write(store, [mining("a", DAY0 + 30), mining("c", DAY0 + 30)], [broken])
    assert store.stats.errors == 1 and "NOT NULL" in (store.stats.last_error or "")
    assert rows(store, "SELECT count(*) AS n FROM samples_raw") == [{"n": 2}]
    assert rows(store, "SELECT max(ts) AS ts, count(*) AS n FROM miner_live") == [{"ts": DAY0 + 1, "n": 2}]
    assert rows(store, "SELECT count(*) AS n FROM energy_15m") == [{"n": 1}]

    write(store, [mining("c", DAY0 + 60)])
    assert store.query("SELECT miner_id FROM samples_raw WHERE ts = ?", [DAY0 + 60]) == [{"miner_id": "c"}]
    assert (store.stats.batches, store.stats.rows) == (2, 3)


def test_miner_live_keeps_the_last_good_time_across_offline_samples(store: TelemetryStore) -> None:
    write(store, [mining("a", DAY0)])
    write(store, [offline("a", DAY0 + 30)])
    write(store, [offline("a", DAY0 + 60)])
    live = rows(store, "SELECT miner_id, ts, status, power_w, last_good_ts FROM miner_live")
    assert live == [
        {"miner_id": "a", "ts": DAY0 + 60, "status": "offline", "power_w": None, "last_good_ts": DAY0}
    ]
    write(store, [mining("a", DAY0 + 90, power_w=2900.0)])
    live = rows(store, "SELECT ts, status, power_w, last_good_ts FROM miner_live")
    assert live == [{"ts": DAY0 + 90, "status": "mining", "power_w": 2900.0, "last_good_ts": DAY0 + 90}]
    write(store, [offline("new", DAY0 + 120)])  # never read well: no last good time to invent
    assert rows(store, "SELECT last_good_ts FROM miner_live WHERE miner_id = 'new'") == [
        {"last_good_ts": None}
    ]


def test_energy_rows_are_absolute_a_second_write_replaces(store: TelemetryStore) -> None:
    """energy_15m holds each (miner, interval)'s whole value: writing the interval again replaces it,
    never adds to it, so a batch replayed after a crash cannot count energy twice."""

    def row(joules: int, covered_s: int) -> IntervalEnergy:
        return IntervalEnergy(
            miner_id="a", interval_start=DAY0, joules=joules, covered_s=covered_s, uncovered_s=0,
            estimated_s=0, peak_w=3000.0,
        )  # fmt: skip

    write(store, [], [row(300_000, 100)])
    write(store, [], [row(900_000, 300)])
    assert rows(store, "SELECT joules, covered_s, avg_w, peak_w FROM energy_15m") == [
        {"joules": 900_000, "covered_s": 300, "avg_w": 3000.0, "peak_w": 3000.0}
    ]

    # The streaming path: a meter fed batch by batch (as the gateway does), then the last batch written
    # a second time with the same rows (a replay): the table equals a recompute from the samples.
    polls = [mining("m", DAY0 + 30 * k, power_w=3000.0 + 10 * k) for k in range(70)]  # crosses 2 boundaries
    live = Meter()
    batches = [polls[i : i + 10] for i in range(0, len(polls), 10)]
    emitted = []
    for batch in batches:
        emitted.append(live.feed(batch))
        write(store, batch, emitted[-1])
    write(store, batches[-1], emitted[-1])
    stored = rows(
        store, "SELECT interval_start, joules, covered_s FROM energy_15m WHERE miner_id = 'm' ORDER BY 1"
    )
    recomputed = meter(polls)
    assert stored == [
        {"interval_start": e.interval_start, "joules": e.joules, "covered_s": e.covered_s} for e in recomputed
    ]
    assert [r["interval_start"] for r in stored] == [DAY0, DAY0 + 900, DAY0 + 1800]
    assert sum(r["covered_s"] for r in stored) == 69 * 30


def test_a_batch_with_several_samples_of_one_miner_keeps_one_live_row(store: TelemetryStore) -> None:
    """A batch may hold more than one reading of a miner (buffered readings, a batched replay): the raw
    tier keeps them all, `miner_live` keeps one row per miner, the latest, with the batch's latest good
    time. Repeated batches like this must not multiply live rows."""
    for k in range(6):
        t = DAY0 + 100 * k
        write(store, [mining("a", t), mining("a", t + 30), offline("a", t + 60), mining("b", t)])
    assert rows(store, "SELECT count(*) AS n FROM samples_raw") == [{"n": 24}]
    live = rows(store, "SELECT miner_id, ts, status, last_good_ts FROM miner_live ORDER BY miner_id")
    assert live == [
        {"miner_id": "a", "ts": DAY0 + 560, "status": "offline", "last_good_ts": DAY0 + 530},
        {"miner_id": "b", "ts": DAY0 + 500, "status": "mining", "last_good_ts": DAY0 + 500},
    ]


def _hand_fleet() -> list[Sample]:
    return [
        mining("a", DAY0, hashrate_ths=100.0, power_w=3000.0, temps=(70.0, 72.0), fans_rpm=(5000, 5200),
               accepted=10),
        sleeping("b", DAY0 + 30),
        mining("a", DAY0 + 100, hashrate_ths=110.0, power_w=3300.0, temps=(75.0, 71.0), fans_rpm=(4800, 5100),
               accepted=25),
        offline("a", DAY0 + 200),
        mining("a", DAY0 + 300, hashrate_ths=104.0, power_w=3200.0, temps=(69.0, 70.0), fans_rpm=(5000, 5000),
               accepted=40),
        mining("a", DAY1 + 60, hashrate_ths=90.0, power_w=2900.0, temps=(66.0, 65.0), fans_rpm=(4000, 4100),
               accepted=100),
    ]  # fmt: skip


# Worked by hand from _hand_fleet. 5-minute tier: averages over the samples that have the value (NULLs,
# e.g. of the offline sample, are skipped), accepted_delta = max - min of the share counter within the
# bucket, mining_s = 300 x (mining samples / samples).
EXPECTED_5M = [
    ("a", DAY0, 3, 105.0, 3150.0, 75.0, 4800, 2, 15, 200),
    ("a", DAY0 + 300, 1, 104.0, 3200.0, 70.0, 5000, 2, 0, 300),
    ("a", DAY1, 1, 90.0, 2900.0, 66.0, 4000, 2, 0, 300),
    ("b", DAY0, 1, 0.0, 20.0, None, None, 0, 0, 0),
]
# Daily tier: from the 5-minute rows of each UTC day (averages of the bucket averages).
EXPECTED_DAILY = [
    ("a", dt.date(2023, 11, 14), 4, 104.5, 3175.0, 75.0, 15),
    ("a", dt.date(2023, 11, 15), 1, 90.0, 2900.0, 66.0, 0),
    ("b", dt.date(2023, 11, 14), 1, 0.0, 20.0, None, 0),
]


def tiers(store: TelemetryStore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    five = [tuple(r.values()) for r in rows(store, "SELECT * FROM samples_5m ORDER BY miner_id, bucket")]
    daily = [tuple(r.values()) for r in rows(store, "SELECT * FROM samples_daily ORDER BY miner_id, day")]
    return five, daily


def test_rollups_match_hand_computed_values_and_are_idempotent(store: TelemetryStore) -> None:
    write(store, _hand_fleet())
    now = DAY1 + 600
    store.rollup_5m(now, lookback_s=2 * 86_400).result()
    store.rollup_daily(now, lookback_days=2).result()
    first = tiers(store)
    assert first == (EXPECTED_5M, EXPECTED_DAILY)

    store.rollup_5m(now, lookback_s=2 * 86_400).result()  # the same window again: the same rows
    store.rollup_daily(now, lookback_days=2).result()
    store.rollup_5m(now).result()  # the scheduler's short window rewrites only its own buckets
    store.rollup_daily(now).result()
    assert tiers(store) == first

    write(
        store, [mining("a", DAY1 + 90, hashrate_ths=94.0, power_w=2950.0, temps=(60.0, 61.0), accepted=130)]
    )
    store.rollup_5m(now).result()
    store.rollup_daily(now).result()
    five, daily = tiers(store)
    assert five[:2] == EXPECTED_5M[:2] and five[3] == EXPECTED_5M[3]
    assert five[2] == ("a", DAY1, 2, 92.0, 2925.0, 66.0, 4000, 2, 30, 300)
    assert daily[0] == EXPECTED_DAILY[0] and daily[2] == EXPECTED_DAILY[2]
    assert daily[1] == ("a", dt.date(2023, 11, 15), 2, 92.0, 2925.0, 66.0, 30)


def test_daily_rollup_uses_utc_days_whatever_the_local_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway box set to a site's local zone (here UTC-6) must still roll up UTC days: a day's row
    holds that UTC day's buckets, as the tier's contract and the API's `epoch(day)` assume."""
    monkeypatch.setenv("TZ", "America/Chicago")
    telemetry = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        write(telemetry, _hand_fleet())
        telemetry.rollup_5m(DAY1 + 600, lookback_s=2 * 86_400).result()
        telemetry.rollup_daily(DAY1 + 600, lookback_days=2).result()
        assert tiers(telemetry) == (EXPECTED_5M, EXPECTED_DAILY)
    finally:
        telemetry.close()


def test_retention_deletes_only_older_raw_rows(store: TelemetryStore) -> None:
    now = DAY1 + 1000
    cutoff = now - store.raw_retention_s
    write(store, [mining("a", cutoff - 1), mining("a", cutoff), mining("a", now - 10)])
    store.rollup_5m(now, lookback_s=2 * 86_400).result()
    before = tiers(store), rows(store, "SELECT * FROM miner_live")
    assert store.apply_retention(now).result() == 1
    assert [r["ts"] for r in rows(store, "SELECT ts FROM samples_raw ORDER BY ts")] == [cutoff, now - 10]
    assert (tiers(store), rows(store, "SELECT * FROM miner_live")) == before  # other tiers keep theirs
    assert store.apply_retention(now).result() == 0


def test_close_writes_everything_queued(tmp_path: Path) -> None:
    """Batches still in the queue when close() is called (the writer is held busy until then) are
    written before the file is closed: reopening the file finds every one of them."""
    path = tmp_path / "telemetry.duckdb"
    telemetry = TelemetryStore(path)
    started, release = threading.Event(), threading.Event()
    telemetry.run(lambda conn: (started.set(), release.wait()))
    assert started.wait(30)
    for k in range(10):
        telemetry.submit(WriteBatch([mining("a", DAY0 + 30 * k), mining("b", DAY0 + 30 * k)]))
    assert telemetry.queue_depth == 10
    release.set()
    telemetry.close()
    assert (telemetry.stats.batches, telemetry.stats.rows) == (10, 20)
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT ts) FROM samples_raw").fetchall() == [(20, 10)]
    reopened = TelemetryStore(path)  # and the schema opens over existing data
    try:
        assert rows(reopened, "SELECT count(*) AS n FROM miner_live") == [{"n": 2}]
    finally:
        reopened.close()


def test_queue_depth_backpressure_and_writer_stats(store: TelemetryStore) -> None:
    """While the writer is busy, batches wait in a bounded queue (its depth is what /metrics shows);
    when it is full, submit() blocks the caller instead of dropping anything."""
    started, release = threading.Event(), threading.Event()
    store.run(lambda conn: (started.set(), release.wait()))
    assert started.wait(30)
    for k in range(QUEUE_BATCHES):
        store.submit(WriteBatch([mining("a", DAY0 + k)]))
    assert store.queue_depth == QUEUE_BATCHES
    extra = threading.Thread(target=store.submit, args=(WriteBatch([mining("a", DAY0 + 99)]),))
    extra.start()
    extra.join(0.3)
    assert extra.is_alive(), "a full queue must hold the submitter back, not drop or overflow"
    release.set()
    extra.join(30)
    assert not extra.is_alive()
    assert store.flush()
    assert store.queue_depth == 0
    assert (store.stats.batches, store.stats.rows, store.stats.errors) == (
        QUEUE_BATCHES + 1,
        QUEUE_BATCHES + 1,
        0,
    )
    assert 0 < store.stats.last_write_s <= store.stats.total_write_s
    assert rows(store, "SELECT count(*) AS n FROM samples_raw") == [{"n": QUEUE_BATCHES + 1}]
    assert store.size_bytes() > 0


def test_history_queries_bind_parameters(store: TelemetryStore) -> None:
    write(store, [mining("a", DAY0 + 30 * k, power_w=3000.0 + k) for k in range(5)] + [mining("b", DAY0)])
    history = store.query(
        "SELECT ts, power_w FROM samples_raw WHERE miner_id = ? AND ts >= ? AND ts < ? ORDER BY ts",
        ["a", DAY0 + 30, DAY0 + 120],
    )
    assert history == [{"ts": DAY0 + 30 * k, "power_w": 3000.0 + k} for k in (1, 2, 3)]
    assert store.query("SELECT ts FROM samples_raw WHERE miner_id = ?", ["a' OR '1'='1"]) == []


def test_recent_samples_come_back_in_arrival_order_even_after_retention_and_reopen(tmp_path: Path) -> None:
    """What the meter is rebuilt from after a restart: per miner, in the order the samples arrived
    (a delayed reading stays where it arrived, it is not sorted into place), from `since_ts` on; and
    that order survives deletions by retention, a checkpoint and a reopen of the file."""
    path = tmp_path / "telemetry.duckdb"
    telemetry = TelemetryStore(path, raw_retention_s=86_400)
    write(telemetry, [mining("old", DAY0 - 86_400 - 100)])
    write(telemetry, [mining("a", DAY0 + 100, power_w=1.0), mining("b", DAY0 + 100)])
    write(telemetry, [mining("a", DAY0 + 50, power_w=2.0, power_source=Source.ESTIMATED)])  # delayed
    write(telemetry, [offline("a", DAY0 + 200)])
    assert telemetry.apply_retention(DAY0).result() == 1
    telemetry.close()
    telemetry = TelemetryStore(path)
    try:
        write(telemetry, [mining("a", DAY0 + 150, power_w=3.0)])
        assert telemetry.recent_samples(0) == [
            ("a", DAY0 + 100, 1.0, False, "mining"),
            ("a", DAY0 + 50, 2.0, True, "mining"),
            ("a", DAY0 + 200, None, None, "offline"),
            ("a", DAY0 + 150, 3.0, False, "mining"),
            ("b", DAY0 + 100, 3000.0, False, "mining"),
        ]
        assert [r[1] for r in telemetry.recent_samples(DAY0 + 100) if r[0] == "a"] == [
            DAY0 + 100,
            DAY0 + 200,
            DAY0 + 150,
        ]
    finally:
        telemetry.close()
