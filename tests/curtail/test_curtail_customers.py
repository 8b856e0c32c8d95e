"""Per-customer minimum uptime from the inventory: owners come from state.db (assignment history, else the
customer set at registration), commitments from `[curtail] customer_min_uptime_pct`, and the plan keeps a
customer's uptime commitment even when every hour is above breakeven.

Real state.db, the real solver child process, and (the last test) a running gateway over a simulated
fleet. Addresses 127.77.128.x belong to this module.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import ConfigError, CurtailSettings, load_settings
from gateway.curtail.planner_solve import make_plan
from gateway.curtail_inputs import owners_at
from gateway.curtail_request import PERIOD_S, build_request, classes_of, committed_owners, customers_of
from gateway.demo import register
from gateway.devices.model import Mode
from gateway.energy.tariffs import PriceSeries
from gateway.runtime import Gateway
from gateway.store.energy_state import assign_miners, import_prices
from gateway.store.state import InventoryRow, open_state, upsert_miners
from tests.curtail.test_gateway_curtail import until
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

T0 = 1_790_000_100 // PERIOD_S * PERIOD_S
DEAR = Decimal("0.20")  # above every class's breakeven at 0.045 $/TH/day (the S21's is 0.107)
S21 = PROFILES.get("antminer_s21")
S19 = PROFILES.get("antminer_s19j_pro")


def cfg(**overrides: Any) -> CurtailSettings:
    base: dict[str, Any] = {"enabled": True, "price_series": "rt", "horizon_periods": 8, "pool_fee": "0"}
    return CurtailSettings.model_validate({**base, **overrides})


def test_owners_come_from_assignments_and_registration(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.db")
    rows = [
        InventoryRow(
            id="m1", ip="10.0.0.1", family="antminer", profile_key="antminer_s21", customer_id="acme"
        ),
        InventoryRow(id="m2", ip="10.0.0.2", family="antminer", profile_key="antminer_s21"),
        InventoryRow(
            id="m3", ip="10.0.0.3", family="antminer", profile_key="antminer_s21", customer_id="bob"
        ),
    ]
    upsert_miners(conn, rows, now=T0 - 10 * 86_400)
    assign_miners(conn, ["m2"], "acme", at=T0 - 86_400, now=T0 - 86_400)
    assign_miners(conn, ["m3"], "acme", at=T0 + 3600, now=T0)  # a future change: bob owns it now
    assert owners_at(conn, T0) == {"m1": "acme", "m2": "acme", "m3": "bob"}
    assert owners_at(conn, T0 + 3600) == {"m1": "acme", "m2": "acme", "m3": "acme"}
    assert owners_at(conn, T0 - 2 * 86_400) == {"m1": "acme", "m3": "bob"}  # m2 unowned before
    conn.close()


def test_only_committed_customers_get_classes_of_their_own() -> None:
    profiles = {"m1": S21, "m2": S21, "m3": S21, "m4": S19}
    owner_of = committed_owners({"m1": "acme", "m2": "bob", "m4": "acme"}, {"acme": Decimal(80)})
    assert owner_of == {"m1": "acme", "m4": "acme"}
    classes = classes_of(profiles, owner_of)
    assert [(c.key, c.model, c.count) for c in classes] == [
        ("antminer_s19j_pro|normal|acme", "antminer_s19j_pro", 1),
        ("antminer_s21|normal", "antminer_s21", 2),
        ("antminer_s21|normal|acme", "antminer_s21", 1),
    ]
    (acme,) = customers_of(profiles, owner_of, {"acme": Decimal(80), "nobody": Decimal(10)})
    assert acme.key == "acme" and acme.min_uptime == Decimal("0.8")
    assert acme.class_keys == ("antminer_s19j_pro|normal|acme", "antminer_s21|normal|acme")
    # no commitments: exactly the classes a site without customers always had
    assert [c.key for c in classes_of(profiles)] == ["antminer_s19j_pro|normal", "antminer_s21|normal"]


def plan_for(pct: Decimal, prices: tuple[Decimal, ...], *, acme: int = 2, others: int = 2) -> Any:
    profiles = {f"a{i}": S21 for i in range(acme)} | {f"o{i}": S21 for i in range(others)}
    owner_of = committed_owners({f"a{i}": "acme" for i in range(acme)}, {"acme": pct})
    classes = classes_of(profiles, owner_of)
    req = build_request(
        cfg=cfg(horizon_periods=len(prices), min_on_periods=1, min_off_periods=1),
        classes=classes,
        known={T0 + t * PERIOD_S: p for t, p in enumerate(prices)},
        start=T0,
        initial_on={c.key: c.count for c in classes},
        customers=customers_of(profiles, owner_of, {"acme": pct}),
    )
    return req, make_plan(req, now=T0)


def test_a_customers_uptime_commitment_holds_when_every_hour_is_above_breakeven() -> None:
    _req, plan = plan_for(Decimal(50), (DEAR,) * 8)
    assert plan.status == "optimal", plan.explanation
    acme = [p.on_by_class["antminer_s21|normal|acme"] for p in plan.periods]
    others = [p.on_by_class["antminer_s21|normal"] for p in plan.periods]
    assert sum(acme) == 8  # 50 % of 2 miners x 8 periods, and not one miner-period more
    assert others == [0] * 8  # nobody else runs at a loss
    _, free = plan_for(Decimal(0), (DEAR,) * 8)
    assert all(n == 0 for p in free.periods for n in p.on_by_class.values())


@settings(max_examples=10, deadline=None)
@given(
    pct=st.integers(0, 100),
    prices=st.lists(
        st.sampled_from([Decimal("0.02"), Decimal("0.09"), DEAR, Decimal("0.5")]), min_size=1, max_size=8
    ),
)
def test_the_commitment_always_holds(pct: int, prices: list[Decimal]) -> None:
    _req, plan = plan_for(Decimal(pct), tuple(prices), acme=3, others=1)
    assert not plan.status.startswith("fallback"), plan.explanation
    acme = sum(p.on_by_class["antminer_s21|normal|acme"] for p in plan.periods)
    assert acme >= math.ceil(Decimal(pct) / 100 * 3 * len(prices))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"acme": "101"}, "customer_min_uptime_pct.acme: a percentage 0..100, not 101"),
        ({"acme": "-1"}, "customer_min_uptime_pct.acme: a percentage 0..100, not -1"),
        ({"acme": "NaN"}, "curtail.customer_min_uptime_pct.acme: Input should be a finite number"),
        ({"=HYPERLINK(1)": "5"}, "customer id '=HYPERLINK(1)': 1-64 characters, not starting with"),
        ({"x" * 65: "5"}, "1-64 characters"),
        ({"acme": "lots"}, "curtail.customer_min_uptime_pct.acme: Input should be a valid decimal"),
    ],
)
def test_a_bad_commitment_is_one_line_naming_it(value: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={}, demo=True, curtail={"customer_min_uptime_pct": value})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_commitments_read_from_site_toml(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('demo = true\n[curtail]\ncustomer_min_uptime_pct = { acme = "80", "bob-2" = "12.5" }\n')
    got = load_settings(path, environ={}).curtail.customer_min_uptime_pct
    assert got == {"acme": Decimal(80), "bob-2": Decimal("12.5")}


async def test_the_running_gateway_keeps_a_committed_customer_mining_through_dear_power(
    tmp_path: Path,
) -> None:
    """4 S21s, two of them acme's with a 100 % commitment; power is dear all day: the gateway sleeps
    exactly the two that are not acme's."""
    t0 = int(time.time()) // PERIOD_S * PERIOD_S
    async with simulator("s21=1", "127.77.128.1", miners=4) as sim:
        register(tmp_path, sim)
        conn = open_state(tmp_path / "state.db")
        starts = tuple(range(t0 - 86_400, t0 + 2 * 86_400, PERIOD_S))
        series = PriceSeries(interval_s=PERIOD_S, starts=starts, prices_per_kwh=(DEAR,) * len(starts))
        import_prices(conn, "rt", series, fmt="test", source_name="t", data=b"t", now=t0)
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM miners"))
        at = int(time.time()) + 1  # registration gave every miner an owner from now
        assign_miners(conn, ids[:2], "acme", at=at, now=at - 1)
        conn.close()
        await until(lambda: time.time() > at, "acme's ownership to begin")
        settings_ = load_settings(
            None,
            environ={},
            demo=True,
            polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
            api={"host": "127.77.255.2", "port": 0},
            curtail={"enabled": True, "price_series": "rt", "replan_interval_s": 86_400, "batch_gap_s": 0.1,
                     "min_on_periods": 1, "min_off_periods": 1, "customer_min_uptime_pct": {"acme": "100"}},
        )  # fmt: skip
        gateway = Gateway(settings_, tmp_path, profiles=PROFILES)
        await gateway.start()
        try:
            service = gateway.curtail
            assert service is not None
            await until(lambda: service.plan is not None, "the first plan")
            assert service.plan is not None
            assert {c.key: c.count for c in service.plan.classes} == {
                "antminer_s21|normal": 2,
                "antminer_s21|normal|acme": 2,
            }
            assert all(
                dict(p.on_by_class) == {"antminer_s21|normal": 0, "antminer_s21|normal|acme": 2}
                for p in service.plan.periods
            )
            acme_ips = {m.ip for m in sim.miners if m.identity.mac.lower() in ids[:2]}
            await until(
                lambda: (
                    {m.ip for m in sim.miners if m.physics.mode is Mode.SLEEP}
                    == {m.ip for m in sim.miners} - acme_ips
                ),
                "the two miners that are not acme's asleep",
            )
        finally:
            await gateway.stop()
