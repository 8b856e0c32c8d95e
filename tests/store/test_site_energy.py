"""Site energy materialised in a real DuckDB file with the real telemetry schema (made by TelemetryStore, the
way the gateway makes it), refreshed on the store's writer thread: round trip, idempotence, late energy,
rebuild from energy_15m, DST months, the current month's horizon, and bad input that changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from gateway.energy.aggregates import Level, SiteAggregates, aggregate, months_covering, site_intervals
from gateway.energy.carbon import CarbonFactor
from gateway.energy.settlement_model import IntervalColumns
from gateway.metering import IntervalEnergy
from gateway.store.site_energy import (
    SELECT_FIGURES,
    RefreshResult,
    figures_from_rows,
    read_figures,
    refresh_site_energy,
)
from gateway.store.telemetry import TelemetryStore, WriteBatch

D = Decimal
TZ = "America/Chicago"
FACTOR = CarbonFactor(kg_per_kwh=D("0.42"), source="test factor, not a published figure", year=2024)


def at(year: int, mon: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, mon, day, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp())


NOV = at(2024, 11, 1)
DEC = at(2024, 12, 1)
FALL_BACK_ONE = at(2024, 11, 3, 1)  # the first 01:00 (CDT); the second is an hour later (CST)


def price(t: int) -> Decimal:
    """A real-time-like price: cheap at night, dear in the afternoon, now and then negative."""
    hour = datetime.fromtimestamp(t, ZoneInfo(TZ)).hour
    return D("-0.01234") if hour == 3 else D("0.04321") + D("0.00777") * (hour // 6)


def energy(
    miner: str, start: int, joules: int, covered: int = 900, uncovered: int = 0, est: int = 0
) -> IntervalEnergy:
    return IntervalEnergy(
        miner_id=miner,
        interval_start=start,
        joules=joules,
        covered_s=covered,
        uncovered_s=uncovered,
        estimated_s=est,
        peak_w=None if covered == 0 else joules / covered,
    )


def november_rows() -> list[IntervalEnergy]:
    """Three miners for the first four days of November 2024 (the fall-back day included), one of them
    estimated, one with a gap, so every field of a figure is exercised."""
    rows = []
    for k in range(4 * 96 + 4):
        t = NOV + 900 * k
        rows.append(energy("s19-a", t, 3_010_500 + 7 * k))
        rows.append(energy("s19-b", t, 2_700_000, est=900))
        if k % 5:
            rows.append(energy("m30-c", t, 1_503_000 + k, covered=600, uncovered=300))
    return rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    telemetry = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        yield telemetry
    finally:
        telemetry.close()


def write(store: TelemetryStore, rows: list[IntervalEnergy]) -> None:
    store.submit(WriteBatch((), rows))
    assert store.flush()


def refresh(store: TelemetryStore, since: int, until: int, now: int, **kwargs: Any) -> RefreshResult:
    options: dict[str, Any] = {"tz": TZ, "price_fn": price, "carbon": FACTOR, **kwargs}

    def job(conn: duckdb.DuckDBPyConnection) -> RefreshResult:
        return refresh_site_energy(conn, since=since, until=until, now=now, **options)

    result: RefreshResult = store.run(job).result(timeout=120)
    return result


def stored(store: TelemetryStore, since: int = NOV, until: int = DEC) -> SiteAggregates:
    def level(lv: Level) -> tuple[Any, ...]:
        return tuple(figures_from_rows(store.query(SELECT_FIGURES, [str(lv), since, until])))

    return SiteAggregates(hourly=level(Level.HOUR), daily=level(Level.DAY), monthly=level(Level.MONTH))


def table(store: TelemetryStore, name: str) -> list[dict[str, Any]]:
    order = "interval_start" if name == "site_energy_15m" else "level, start_ts"
    return store.query(f"SELECT * FROM {name} ORDER BY {order}")


def expected(rows: list[IntervalEnergy], *, horizon: int | None = None) -> SiteAggregates:
    """The pure computation on the same rows: what the tables must hold."""
    return aggregate(
        site_intervals(IntervalColumns.from_rows(rows)),
        start=NOV,
        end=DEC,
        tz=TZ,
        price_fn=price,
        carbon=FACTOR,
        horizon=horizon,
    )


def test_refresh_materialises_the_months_figures_exactly(store: TelemetryStore) -> None:
    rows = november_rows()
    write(store, rows)
    result = refresh(store, NOV, NOV + 4 * 86_400 + 3600, now=DEC + 3600)
    assert result == RefreshResult(
        start=NOV,
        end=NOV + 4 * 86_400 + 3600,
        months_start=NOV,
        months_end=DEC,
        site_intervals=4 * 96 + 4,
        figures=30 * 24 + 1 + 30 + 1,  # the fall-back day's extra hour
        changed=30 * 24 + 1 + 30 + 1,
    )
    got = stored(store)
    assert got == expected(rows)
    (month,) = got.monthly
    assert month.intervals == 30 * 96 + 4 and month.intervals_with_data == 4 * 96 + 4
    day3 = next(d for d in got.daily if d.label == "2024-11-03")
    assert day3.intervals == 100 and day3.end - day3.start == 25 * 3600
    ones = [h for h in got.hourly if h.label.startswith("2024-11-03T01:00")]
    assert [h.start for h in ones] == [FALL_BACK_ONE, FALL_BACK_ONE + 3600]
    assert month.cost is not None and month.co2 is not None and month.peak is not None
    assert month.co2.factor == FACTOR and month.energy.coverage_pct is not None
    assert {r["rev"] for r in table(store, "site_energy")} == {1}
    assert len(table(store, "site_energy_15m")) == 4 * 96 + 4


def test_rerunning_a_window_rewrites_the_same_rows(store: TelemetryStore) -> None:
    write(store, november_rows())
    refresh(store, NOV, DEC, now=DEC)
    first = (table(store, "site_energy"), table(store, "site_energy_15m"))
    again = refresh(store, NOV, DEC, now=DEC + 86_400)  # later clock, same data
    assert again.changed == 0
    assert (table(store, "site_energy"), table(store, "site_energy_15m")) == first  # rev and computed_at kept


def test_late_energy_replaces_the_rows_of_its_window(store: TelemetryStore) -> None:
    rows = november_rows()
    write(store, rows)
    refresh(store, NOV, DEC, now=DEC)
    before = {(r["level"], r["start_ts"]): r for r in table(store, "site_energy")}

    # the meter re-emits an interval (absolute value, larger) and a late miner appears in it
    late_at = at(2024, 11, 2, 14, 30)
    late = [
        energy("s19-a", late_at, 3_150_000),
        energy("late-d", late_at, 900_000, covered=300, uncovered=600),
    ]
    write(store, late)
    result = refresh(store, late_at, late_at + 900, now=DEC + 7)
    assert (result.site_intervals, result.changed) == (1, 3)  # its hour, its day, its month

    rows = [r for r in rows if not (r.miner_id == "s19-a" and r.interval_start == late_at)] + late
    assert stored(store) == expected(rows)
    after = {(r["level"], r["start_ts"]): r for r in table(store, "site_energy")}
    bumped = {k for k in after if after[k]["rev"] != before[k]["rev"]}
    assert bumped == {("hour", at(2024, 11, 2, 14)), ("day", at(2024, 11, 2)), ("month", NOV)}
    assert all(after[k]["rev"] == 2 and after[k]["computed_at"] == DEC + 7 for k in bumped)
    site_row = store.query("SELECT * FROM site_energy_15m WHERE interval_start = ?", [late_at])[0]
    assert (site_row["miners"], site_row["energy_j"]) == (
        4,
        3_150_000 + 2_700_000 + 900_000 + 1_503_000 + 154,  # m30-c at k = 38.5 h x 4
    )


def test_everything_is_recomputable_from_energy_15m(store: TelemetryStore) -> None:
    write(store, november_rows())
    refresh(store, NOV, DEC, now=DEC)
    figures = stored(store)
    site = table(store, "site_energy_15m")
    store.run(lambda conn: conn.execute("DROP TABLE site_energy; DROP TABLE site_energy_15m")).result()
    refresh(store, NOV - 86_400 * 3, DEC, now=DEC)  # any window holding the data rebuilds it
    assert stored(store) == figures and table(store, "site_energy_15m") == site


def test_a_narrow_window_keeps_the_rest_of_the_month(store: TelemetryStore) -> None:
    rows = november_rows()
    write(store, rows)
    refresh(store, NOV, DEC, now=DEC)
    result = refresh(store, at(2024, 11, 3, 0, 7), at(2024, 11, 3, 0, 52), now=DEC)
    assert (result.start, result.end, result.site_intervals) == (at(2024, 11, 3), at(2024, 11, 3, 1), 4)
    assert stored(store) == expected(rows)


def test_the_current_month_stops_at_now(store: TelemetryStore) -> None:
    rows = [r for r in november_rows() if r.interval_start < at(2024, 11, 2, 9)]
    write(store, rows)
    now = at(2024, 11, 2, 8, 50)
    refresh(store, now - 2 * 86_400, now, now=now)
    got = stored(store)
    assert got == expected(rows, horizon=now - now % 900 + 900)
    assert got.hourly[-1].label == "2024-11-02T08:00-05:00" and len(got.daily) == 2
    assert got.monthly[0].intervals == 30 * 96 + 4  # the month's length, with its data so far

    rows += [energy("s19-a", at(2024, 11, 2, 9), 1_000)]
    write(store, rows[-1:])
    later = at(2024, 11, 2, 9, 5)
    refresh(store, later - 2 * 86_400, later, now=later)
    assert stored(store).hourly[-1].label == "2024-11-02T09:00-05:00"
    assert stored(store) == expected(rows, horizon=later - later % 900 + 900)


def test_a_window_across_months_rewrites_both(store: TelemetryStore) -> None:
    oct_last = at(2024, 10, 31, 23, 45)
    rows = [energy("s19-a", oct_last, 2_000_000), energy("s19-a", NOV, 3_000_000)]
    write(store, rows)
    result = refresh(store, oct_last, NOV + 900, now=DEC)
    assert (result.months_start, result.months_end) == months_covering(oct_last, NOV + 900, TZ)
    october = stored(store, at(2024, 10, 1), NOV).monthly[0]
    november = stored(store).monthly[0]
    assert (october.label, october.energy.energy_j) == ("2024-10", 2_000_000)
    assert (november.label, november.energy.energy_j) == ("2024-11", 3_000_000)


def test_bad_rows_and_missing_prices_change_nothing(store: TelemetryStore) -> None:
    write(store, november_rows())
    refresh(store, NOV, DEC, now=DEC)
    snapshot = (table(store, "site_energy"), table(store, "site_energy_15m"))

    store.run(
        lambda conn: conn.execute(
            "INSERT INTO energy_15m VALUES ('bad-miner', ?, 5, 901, 0, 0, NULL, NULL)", [NOV]
        )
    ).result()
    with pytest.raises(ValueError, match=f"miner bad-miner at interval_start {NOV}: covered_s"):
        refresh(store, NOV, NOV + 900, now=DEC)
    assert (table(store, "site_energy"), table(store, "site_energy_15m")) == snapshot
    store.run(lambda conn: conn.execute("DELETE FROM energy_15m WHERE miner_id = 'bad-miner'")).result()

    def no_price(t: int) -> Decimal:
        raise LookupError(f"no real-time price for {t}")

    with pytest.raises(LookupError, match="no real-time price"):
        refresh(store, NOV, NOV + 900, now=DEC, price_fn=no_price)
    with pytest.raises(ValueError, match="empty refresh window"):
        refresh(store, NOV, NOV, now=DEC)
    with pytest.raises(ValueError, match="unknown IANA time zone"):
        refresh(store, NOV, DEC, now=DEC, tz="Nowhere/Atlantis")
    with pytest.raises(ValueError, match="outside"):  # energy after `now`: a clock gone backwards
        refresh(store, NOV, DEC, now=NOV + 3600)
    assert (table(store, "site_energy"), table(store, "site_energy_15m")) == snapshot


def test_figures_survive_a_restart_and_readers_need_no_writer(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.duckdb"
    first = TelemetryStore(path)
    try:
        with duckdb.connect(str(tmp_path / "empty.duckdb")) as empty:
            assert read_figures(empty, Level.DAY, NOV, DEC) == []  # before the first refresh: nothing
        rows = november_rows()
        write(first, rows)
        refresh(first, NOV, DEC, now=DEC)
        figures = stored(first)
    finally:
        first.close()
    with duckdb.connect(str(path), read_only=True) as conn:
        assert tuple(read_figures(conn, Level.HOUR, NOV, DEC)) == figures.hourly
        assert tuple(read_figures(conn, Level.MONTH, NOV, DEC)) == figures.monthly == expected(rows).monthly


def test_without_prices_or_factor_the_columns_stay_null(store: TelemetryStore) -> None:
    write(store, november_rows()[:10])
    refresh(store, NOV, DEC, now=DEC, price_fn=None, carbon=None)
    rows = table(store, "site_energy")
    assert all(r["cost"] is None and r["co2_kg"] is None and r["co2_source"] is None for r in rows)
    assert all(f.cost is None and f.co2 is None for f in stored(store).figures)
