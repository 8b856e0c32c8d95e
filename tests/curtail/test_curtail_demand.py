"""Demand charges in the running gateway's plan: the rate from the active tariff in state.db, the month's
peak so far from `site_energy_15m` in a real DuckDB telemetry store, and a plan that does not raise the
month's peak when the rate makes it uneconomic (and does when it pays).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import FakeClock
from gateway.config import CurtailSettings, load_settings
from gateway.curtail.executor import Executor
from gateway.curtail.planner_solve import make_plan
from gateway.curtail_inputs import read_demand
from gateway.curtail_plan_store import current_plan
from gateway.curtail_request import PERIOD_S, Demand, build_request, classes_of, demand_rate, peak_kw_so_far
from gateway.curtail_service import CurtailService, executor_settings
from gateway.energy.tariffs import (
    DemandCharges,
    FlatEnergy,
    PriceSeries,
    RatePeriod,
    RateTier,
    Tariff,
    single_rate,
)
from gateway.polling import PollCoordinator
from gateway.store.energy_state import activate_tariff, import_prices, import_tariff
from gateway.store.site_energy import ensure_schema
from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry import TelemetryStore
from tests.devices.capture import PROFILES

NOW = 1_786_000_000  # 2026-08-06 (UTC), mid-month
MONTH_START = 1_785_542_400  # 2026-08-01T00:00Z
CHEAP = Decimal("0.03")
S21 = PROFILES.get("antminer_s21")  # 3.5 kW, 200 TH/s


def energy_j(kw: float, seconds: int = PERIOD_S) -> int:
    return round(kw * 1000 * seconds)


def cfg(**overrides: Any) -> CurtailSettings:
    base: dict[str, Any] = {"enabled": True, "price_series": "rt", "horizon_periods": 8, "pool_fee": "0",
                            "min_on_periods": 1, "min_off_periods": 1}  # fmt: skip
    return CurtailSettings.model_validate({**base, **overrides})


def tariff(demand: DemandCharges) -> Tariff:
    return Tariff(name="t", energy=FlatEnergy(rate_per_kwh=CHEAP), valid_from=1_700_000_000,
                  demand=demand)  # fmt: skip


# --- pure pieces ----------------------------------------------------------------------------------------


def test_the_peak_so_far_is_the_months_busiest_interval_only() -> None:
    records = [
        (MONTH_START - PERIOD_S, energy_j(99.0)),  # last month's peak does not count
        (MONTH_START, energy_j(3.0)),
        (MONTH_START + PERIOD_S, energy_j(4.0)),
        (MONTH_START + PERIOD_S, energy_j(3.0)),  # several rows per interval add up
        (NOW + PERIOD_S, energy_j(50.0)),  # not yet
    ]
    assert peak_kw_so_far(records, now=NOW, tz="UTC", interval_s=900) == 7.0
    assert peak_kw_so_far(records, now=NOW, tz="UTC", interval_s=1800) == 5.0  # 30-minute average
    assert peak_kw_so_far([], now=NOW, tz="UTC", interval_s=900) == 0.0


def test_the_rate_is_the_marginal_tier_at_the_peak_of_the_local_month() -> None:
    tiered = DemandCharges(
        flat_periods=(RatePeriod(name="demand", tiers=(RateTier(rate=Decimal(10), limit=Decimal(5)),
                                                       RateTier(rate=Decimal(30)))),),
        flat_months=("demand",) * 12,
    )  # fmt: skip
    history = [tariff(tiered)]
    assert demand_rate(history, now=NOW, tz="UTC", peak_kw=4.9)[0] == Decimal(10)
    assert demand_rate(history, now=NOW, tz="UTC", peak_kw=5.0)[0] == Decimal(30)
    winter_only = DemandCharges(
        flat_periods=(single_rate("w", Decimal(9)),), flat_months=("w",) + (None,) * 11
    )
    rate, note = demand_rate([tariff(winter_only)], now=NOW, tz="UTC", peak_kw=1.0)
    assert rate == 0 and "no demand charge this month" in note
    # 2026-01-31T23:00Z is already February in Tokyo: the local month decides
    jan31 = 1_769_900_400
    assert demand_rate([tariff(winter_only)], now=jan31, tz="UTC", peak_kw=0)[0] == Decimal(9)
    assert demand_rate([tariff(winter_only)], now=jan31, tz="Asia/Tokyo", peak_kw=0)[0] == 0
    assert demand_rate([], now=NOW, tz="UTC", peak_kw=0) == (
        Decimal(0),
        "no tariff in force: no demand charge",
    )


# --- read from the real stores ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Any:
    telemetry = TelemetryStore(tmp_path / "telemetry.duckdb")
    yield telemetry
    telemetry.close()


def write_site_energy(store: TelemetryStore, rows: list[tuple[int, int]]) -> None:
    def job(conn: Any) -> None:
        ensure_schema(conn)
        for start, joules in rows:
            conn.execute("INSERT INTO site_energy_15m VALUES (?, 1, ?, 0, 900, 0, 0)", [start, joules])

    store.run(job).result()


def state_with_tariff(tmp_path: Path, rate_per_kw: str) -> Any:
    conn = open_state(tmp_path / "state.db")
    toml = (
        'name = "site"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.03"\n'
        f'[demand]\nrate_per_kw = "{rate_per_kw}"\n'
    )
    tariff_id, _, _ = import_tariff(conn, toml.encode(), source_name="t.toml", fmt="hashinsight", now=NOW)
    activate_tariff(conn, tariff_id, valid_from=MONTH_START - 86_400, actor="test", now=NOW)
    return conn


def test_read_demand_takes_the_active_tariff_and_the_metered_peak(
    tmp_path: Path, store: TelemetryStore
) -> None:
    conn = state_with_tariff(tmp_path, "20")
    write_site_energy(store, [(MONTH_START + k * PERIOD_S, energy_j(3.5 * (1 + k % 2))) for k in range(96)])
    got = read_demand(conn, store.query, now=NOW, tz="UTC", demand_interval_s=900)
    assert (got.rate_per_kw, got.peak_kw_so_far) == (Decimal(20), 7.0)
    assert "demand 20 $/kW" in got.note and "month peak so far 7 kW" in got.note
    conn.close()


def test_an_unknown_peak_is_not_taken_as_zero(tmp_path: Path, store: TelemetryStore) -> None:
    conn = state_with_tariff(tmp_path, "20")
    no_reader = read_demand(conn, None, now=NOW, tz="UTC", demand_interval_s=900)
    assert no_reader.rate_per_kw == 0 and "no metered site energy reader" in no_reader.note
    no_table = read_demand(conn, store.query, now=NOW, tz="UTC", demand_interval_s=900)  # not refreshed yet
    assert no_table.rate_per_kw == 0 and "no metered site energy" in no_table.note
    conn.close()


# --- the plan -------------------------------------------------------------------------------------------


def plan_with(demand: Demand, *, fleet: int = 4, initial_on: int = 2) -> list[float]:
    classes = classes_of({f"m{i}": S21 for i in range(fleet)})
    req = build_request(cfg=cfg(), classes=classes, known={NOW // PERIOD_S * PERIOD_S: CHEAP},
                        start=NOW // PERIOD_S * PERIOD_S, initial_on={classes[0].key: initial_on},
                        demand=demand)  # fmt: skip
    plan = make_plan(req, now=NOW)
    assert plan.status == "optimal", plan.explanation
    return [sum(n * 3.5 for n in p.on_by_class.values()) for p in plan.periods]


def test_a_plan_does_not_raise_the_months_peak_when_the_demand_rate_makes_it_uneconomic(
    tmp_path: Path, store: TelemetryStore
) -> None:
    """Cheap power, 4 S21s each worth ~0.07 $ a period: 8 periods of one more miner earn ~0.54 $, while
    raising the month's 7 kW peak by 3.5 kW costs 70 $ at 20 $/kW. Two miners run, not four."""
    conn = state_with_tariff(tmp_path, "20")
    write_site_energy(store, [(MONTH_START + PERIOD_S, energy_j(7.0)), (MONTH_START, energy_j(3.5))])
    demand = read_demand(conn, store.query, now=NOW, tz="UTC", demand_interval_s=900)
    assert plan_with(demand) == [7.0] * 8
    assert plan_with(Demand()) == [14.0] * 8  # no demand charge: everything runs
    # a rate too small to matter: raising the peak pays
    assert plan_with(Demand(rate_per_kw=Decimal("0.01"), peak_kw_so_far=7.0)) == [14.0] * 8
    conn.close()


@settings(max_examples=10, deadline=None)
@given(peak_miners=st.integers(0, 4), rate=st.integers(10, 500), initial=st.integers(0, 4))
def test_an_uneconomic_demand_rate_never_raises_the_peak(peak_miners: int, rate: int, initial: int) -> None:
    peak = 3.5 * peak_miners
    loads = plan_with(Demand(rate_per_kw=Decimal(rate), peak_kw_so_far=peak), initial_on=initial)
    assert max(loads) <= peak and loads == [peak] * 8  # up to the peak it is free: all of it runs


# --- the service, wired as the runtime wires it (with the telemetry store's reader) ---------------------


async def test_the_service_plans_under_the_demand_charge_and_says_so(
    tmp_path: Path, store: TelemetryStore
) -> None:
    """A `CurtailService` on real state.db and DuckDB: its plan keeps to the month's 7 kW peak, its
    explanation names the rate and the peak, and the plan is stored for a restart."""
    conn = state_with_tariff(tmp_path, "20")
    start = NOW // PERIOD_S * PERIOD_S
    series = PriceSeries(interval_s=PERIOD_S, starts=(start,), prices_per_kwh=(CHEAP,))
    import_prices(conn, "rt", series, fmt="test", source_name="t", data=b"t", now=NOW)
    rows = {
        f"m{i}": InventoryRow(id=f"m{i}", ip=f"10.0.0.{i}", family="antminer", profile_key="antminer_s21")
        for i in range(4)
    }
    upsert_miners(conn, rows.values(), now=NOW)
    write_site_energy(store, [(MONTH_START + PERIOD_S, energy_j(7.0))])
    clock = FakeClock(NOW)
    cfg_ = cfg()
    settings_ = load_settings(None, environ={}, demo=True)
    service = CurtailService(
        cfg_,
        conn=conn,
        executor=Executor(conn, {}, clock, executor_settings(cfg_)),
        clock=clock,
        profiles=PROFILES,
        inventory=lambda: rows,
        poller=PollCoordinator(settings_.polling, {}, clock, lambda *_: None),
        query=store.query,
        timezone="UTC",
        demand_interval_s=900,
    )
    plan = await service.replan()
    assert [p.on_by_class["antminer_s21|normal"] for p in plan.periods] == [2] * 8
    assert "Demand: demand 20 $/kW ('site' demand) above the peak so far; month peak so far 7 kW." in (
        plan.explanation
    )
    assert service.plan_id is not None and current_plan(conn, NOW) == (service.plan_id, plan)
    conn.close()
