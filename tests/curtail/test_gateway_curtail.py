"""Curtailment in the running gateway: a real `Gateway` polling a simulated fleet over real sockets plans
from prices stored in its state.db, and its own executor carries the plan out, period by period.

The headline test (issue 7, "end to end against the simulator"): a price spike makes the plan cut about
30 % of the site's load; ahead of it the plan ramps down within the ramp limit, after it ramps back up.
The test moves the gateway's wall clock from period to period (`SteppedClock`) and, in each, waits until
the poller's own samples show the plan's counts per class, then checks the site power they meter against
the plan's counts x kW. The sleeping miners raise no alert (the executor's intention reaches the rules)
and wake when the spike has passed.

Addresses 127.74.x.x belong to this module. Below the end-to-end test: the service's pure pieces (request
building, target choice under the fail policy) with exact cases and hypothesis properties, and the API's
answers when there is nothing to plan or curtailment is off.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.api_curtail import add_curtail_routes
from gateway.config import ConfigError, CurtailSettings, load_settings
from gateway.curtail.executor_verify import observed_on
from gateway.curtail.fail_policy import FailPolicy, Input, Response
from gateway.curtail.plan_model import MinerClass, PeriodPlan, Plan
from gateway.curtail.planner_solve import make_plan
from gateway.curtail_request import PERIOD_S, Change, build_request, classes_of, known_prices
from gateway.curtail_service import choose_targets, executor_settings, policy_from_settings
from gateway.demo import register
from gateway.devices.model import Mode, Sample
from gateway.energy.tariffs import PriceSeries
from gateway.runtime import Gateway
from gateway.simulator.run import Simulator
from gateway.store.energy_state import import_prices
from gateway.store.state import open_state
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

API_HOST = "127.74.255.1"
CHEAP = Decimal("0.03")  # below every class's breakeven at 0.045 $/TH/day
SPIKE = Decimal("0.10")  # above the S19j Pro's breakeven (0.061 $/kWh), below the S21's (0.107)
SPIKE_PERIODS = (4, 5, 6, 7)
RAMP_KW = 3.2  # one S19j Pro (3.05 kW) per period, not two
STEPS = 10  # periods walked through: ramp down, spike, ramp up, back to full


class SteppedClock:
    """A wall clock the test moves forward to chosen instants; between moves it runs at real speed. The
    monotonic clock stays the real one, so the poller's schedule and deadlines are untouched."""

    def __init__(self, start: float) -> None:
        self._base = start
        self._mono0 = time.monotonic()

    def now(self) -> float:
        return self._base + (time.monotonic() - self._mono0)

    def monotonic(self) -> float:
        return time.monotonic()

    def jump_to(self, epoch_s: float) -> None:
        assert epoch_s >= self.now(), "this clock only moves forward"
        self._base, self._mono0 = epoch_s, time.monotonic()


async def until(condition: Callable[[], bool], what: str, guard_s: float = 180.0) -> None:
    """Wait for `condition`; the guard only stops a stuck test, it is not a performance bound."""
    try:
        async with asyncio.timeout(guard_s):
            while not condition():  # noqa: ASYNC110 (the gateway's state, not an event)
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for: {what}") from None


def store_prices(data_dir: Path, t0: int) -> None:
    """Two days either side of `t0` at 15 minutes: cheap, with a spike in SPIKE_PERIODS after `t0`."""
    starts = tuple(range(t0 - 2 * 86_400, t0 + 2 * 86_400, PERIOD_S))
    spike = {t0 + k * PERIOD_S for k in SPIKE_PERIODS}
    prices = tuple(SPIKE if ts in spike else CHEAP for ts in starts)
    series = PriceSeries(interval_s=PERIOD_S, starts=starts, prices_per_kwh=prices, source="test")
    conn = open_state(data_dir / "state.db")
    try:
        import_prices(conn, "rt", series, fmt="test", source_name="test", data=b"test", now=t0)
    finally:
        conn.close()


async def get_json(session: aiohttp.ClientSession, url: str, method: str = "GET") -> tuple[int, Any]:
    async with session.request(method, url) as response:
        return response.status, await response.json()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(int(time.time()) // PERIOD_S * PERIOD_S + 1)


@pytest.fixture
async def sim(clock: SteppedClock) -> AsyncIterator[Simulator]:
    """3 stock S19j Pro, 4 stock S21, 3 Braiins OS S21 Pro; mode changes take about two seconds. The
    miners share the gateway's clock, so their share times move with it (no stale-share alerts)."""
    config = simulator("s19jpro=0.3,s21=0.4,s21pro@braiins=0.3", "127.74.0.1", miners=10).config
    async with Simulator(config, PROFILES, clock=clock.now) as running:
        yield running


class Watch:
    """What the test reads from the running gateway: the poller's latest samples, judged per miner."""

    def __init__(self, gateway: Gateway, sim: Simulator) -> None:
        self.gateway = gateway
        self.profile_of = {m.identity.mac.lower(): m.profile for m in sim.miners}

    def latest(self) -> dict[str, Sample | None]:
        return {mid: s.last_sample for mid, s in self.gateway.poller.states().items()}

    def is_off(self, mid: str, sample: Sample | None) -> bool:
        profile = self.profile_of[mid]
        nominal_w = profile.modes[Mode.NORMAL].power_w
        return observed_on(sample, sleep_w=profile.sleep_w, nominal_w=nominal_w) is False

    def settled(self, want_off: dict[str, int], since: float) -> bool:
        """Every miner read after `since`; per class exactly `want_off` asleep; the rest at full rate."""
        samples = self.latest()
        off = dict.fromkeys(want_off, 0)
        for mid, sample in samples.items():
            if sample is None or sample.ts < since:
                return False
            profile = self.profile_of[mid]
            if self.is_off(mid, sample):
                off[f"{profile.key}|normal"] += 1
            elif (sample.hashrate_ths or 0.0) < 0.9 * profile.modes[Mode.NORMAL].hashrate_ths:
                return False  # still ramping up after a wake
        return off == want_off

    def cycles_done(self, count: int) -> bool:
        return self.gateway.poller.totals.cycles >= count


def check_plan(plan: dict[str, Any], t0: int) -> tuple[list[dict[str, Any]], dict[str, int], list[int]]:
    """The plan as the API shows it: ~30 % off at the spike, reached and left within the ramp limit.
    Returns the periods walked through, the class counts, and the deepest periods."""
    assert plan["status"] == "optimal", plan["explanation"]
    assert plan["periods"][0]["start"] == t0
    counts = {c["key"]: c["count"] for c in plan["classes"]}
    assert counts == {"antminer_s19j_pro|normal": 3, "antminer_s21_pro|normal": 3, "antminer_s21|normal": 4}
    periods = plan["periods"][:STEPS]
    planned_kw = [Decimal(p["planned_kw"]) for p in periods]
    full_kw = sum((Decimal(c["kw_per_miner"]) * c["count"] for c in plan["classes"]), Decimal(0))
    assert planned_kw[0] == full_kw and planned_kw[-1] == full_kw
    for k in SPIKE_PERIODS:
        assert Decimal(periods[k]["price_per_kwh"]) == SPIKE and not periods[k]["forecast"]
        assert periods[k]["on"]["antminer_s19j_pro|normal"] < 3
        assert "above breakeven" in periods[k]["reason"]
    deepest = [k for k, kw in enumerate(planned_kw) if kw == min(planned_kw)]
    assert deepest and set(deepest) <= set(SPIKE_PERIODS)
    assert all(periods[k]["on"]["antminer_s19j_pro|normal"] == 0 for k in deepest)
    assert 0.2 < (full_kw - planned_kw[deepest[0]]) / full_kw < 0.4  # about 30 % of the load
    assert max(abs(b - a) for a, b in itertools.pairwise(planned_kw)) <= Decimal(str(RAMP_KW))
    assert len(set(planned_kw)) >= 3  # a staircase, not a cliff
    return periods, counts, deepest


async def test_the_running_gateway_curtails_a_price_spike_along_the_ramp_and_wakes_after(
    sim: Simulator, clock: SteppedClock, tmp_path: Path
) -> None:
    t0 = int(clock.now()) // PERIOD_S * PERIOD_S
    register(tmp_path, sim)
    store_prices(tmp_path, t0)
    settings = load_settings(
        None,
        environ={},
        demo=True,
        polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
        api={"host": API_HOST, "port": 0},
        curtail={
            "enabled": True,
            "price_series": "rt",
            "hashprice_usd_per_th_day": "0.045",
            "pool_fee": "0",
            "ramp_kw_per_period": RAMP_KW,
            "min_on_periods": 1,
            "min_off_periods": 1,
            "replan_interval_s": 86_400,  # the test asks for its one re-plan itself
            "batch_gap_s": 0.1,
            "verify_window_s": 600,
        },
    )
    ip_of = {m.identity.mac.lower(): m.ip for m in sim.miners}
    gateway = Gateway(settings, tmp_path, clock=clock, profiles=PROFILES)
    watch = Watch(gateway, sim)
    await gateway.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            url = f"http://{API_HOST}:{gateway.api_port}"
            service = gateway.curtail
            assert service is not None
            await until(lambda: service.plan is not None, "the first plan")
            status, body = await get_json(session, url + "/api/curtail/plan")
            assert status == 200 and body["planner_ok"] and body["last_error"] is None
            periods, counts, deepest = check_plan(body["plan"], t0)

            # --- the gateway follows it, period by period -------------------------------------------------
            slept: set[str] = set()
            for t, period in enumerate(periods):
                if t:
                    clock.jump_to(period["start"] + 1)
                want_off = {k: n - period["on"][k] for k, n in counts.items()}
                await until(
                    functools.partial(watch.settled, want_off, clock.now()),
                    f"period {t}: {want_off} miners asleep per class",
                )
                samples = watch.latest()
                asleep = {mid for mid, s in samples.items() if watch.is_off(mid, s)}
                slept |= asleep
                # the simulator agrees: exactly these miners are in sleep mode
                in_sleep_mode = {m.ip for m in sim.miners if m.physics.mode is Mode.SLEEP}
                assert in_sleep_mode == {ip_of[m] for m in asleep}
                # metered site power = the plan's counts x kW, plus the sleepers' control boards
                metered_w = sum(s.power_w or 0.0 for s in samples.values() if s is not None)
                planned_w = float(Decimal(period["planned_kw"])) * 1000
                expected_w = planned_w + sum(watch.profile_of[m].sleep_w for m in asleep)
                assert metered_w == pytest.approx(expected_w, rel=0.03), (t, planned_w, metered_w)
                if t == deepest[0]:
                    # several cycles in the deepest cut: enough for asleep_unplanned's debounce (2 samples)
                    cycles = gateway.poller.totals.cycles
                    await until(functools.partial(watch.cycles_done, cycles + 4), "four cycles asleep")
                    assert gateway.executor.intended_states() == dict.fromkeys(asleep, "sleep")

            assert slept == {mid for mid, p in watch.profile_of.items() if p.key == "antminer_s19j_pro"}
            # --- no alert for the planned sleep, though stock Antminers report "sleeping" -----------------
            status, alerts = await get_json(session, url + "/api/alerts?state=all")
            assert status == 200
            assert not [a for a in alerts["alerts"] if a["miner_id"] in slept], alerts
            assert gateway.executor.intended_states() == dict.fromkeys(slept, "normal")

            # --- the events: kW asked vs realised from metered power ---------------------------------------
            status, body = await get_json(session, url + "/api/curtail/events?limit=50")
            assert status == 200
            sleeps = [e for e in body["events"] if e["source"] == "plan" and Decimal(e["asked_kw"]) > 0]
            assert len(sleeps) >= 3  # one S19j Pro per period: the ramp (more only if one was retried)
            verified = [e for e in sleeps if all(a["status"] == "verified" for a in e["actions"])]
            assert {a["miner_id"] for e in verified for a in e["actions"] if a["action"] == "sleep"} == slept
            for event in verified:
                assert event["realised_kw"] is not None
                realised, asked = Decimal(event["realised_kw"]), Decimal(event["asked_kw"])
                assert realised == pytest.approx(asked, rel=Decimal("0.05"))

            # --- on demand: a re-plan from the current period ----------------------------------------------
            before = service.plan
            status, body = await get_json(session, url + "/api/curtail/replan", method="POST")
            assert status == 200, body
            assert service.plan is not before and body["plan"]["created_at"] >= int(clock.now()) - 5
    finally:
        await gateway.stop()


async def test_without_prices_the_fail_policy_decides_and_the_gateway_applies_it(tmp_path: Path) -> None:
    """No price stored for the series: the feed is stale and no plan can be made. The site configured
    `price_feed = "curtail"`, so the running gateway sleeps its miners, says why, and raises no alert."""
    async with simulator("s21=1", "127.74.1.1", miners=2) as sim:
        register(tmp_path, sim)
        settings = load_settings(
            None,
            environ={},
            demo=True,
            polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
            api={"host": API_HOST, "port": 0},
            curtail={
                "enabled": True,
                "price_series": "rt",
                "fail_policy": {"price_feed": "curtail"},
                "batch_gap_s": 0.1,
            },
        )
        gateway = Gateway(settings, tmp_path, profiles=PROFILES)
        watch = Watch(gateway, sim)
        await gateway.start()
        try:
            await until(
                functools.partial(watch.settled, {"antminer_s21|normal": 2}, time.time()), "both asleep"
            )
            assert all(m.physics.mode is Mode.SLEEP for m in sim.miners)
            cycles = gateway.poller.totals.cycles
            await until(functools.partial(watch.cycles_done, cycles + 4), "four cycles asleep")
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                url = f"http://{API_HOST}:{gateway.api_port}"
                status, body = await get_json(session, url + "/api/curtail/plan")
                assert status == 200 and body["plan"] is None and body["planner_ok"] is False
                assert "no prices stored for series 'rt'" in body["last_error"]
                assert body["following"] == {
                    "source": "fail_policy",
                    "reason": "planner, price_feed failed: curtail",
                    "on": {"antminer_s21|normal": 0},
                    "failed_inputs": ["price_feed", "planner"],
                }
                status, alerts = await get_json(session, url + "/api/alerts?state=all")
                assert status == 200 and alerts["alerts"] == []
        finally:
            await gateway.stop()


# --- the service's pure pieces ---------------------------------------------------------------------------


def cfg(**overrides: Any) -> CurtailSettings:
    base: dict[str, Any] = {"enabled": True, "price_series": "rt", "horizon_periods": 4, "pool_fee": "0"}
    return CurtailSettings.model_validate({**base, **overrides})


S21 = MinerClass(key="antminer_s21|normal", model="antminer_s21", mode="normal", count=4,
                 ths_per_miner=200.0, kw_per_miner=3.5)  # fmt: skip
T0 = 1_750_000_500 // PERIOD_S * PERIOD_S


def test_classes_come_from_the_firmware_profiles_of_the_inventory() -> None:
    s21 = PROFILES.get("antminer_s21")
    s19 = PROFILES.get("antminer_s19j_pro")
    classes = classes_of({"a": s21, "b": s19, "c": s21})
    assert [(c.key, c.count, c.kw_per_miner, c.ths_per_miner) for c in classes] == [
        ("antminer_s19j_pro|normal", 1, 3.05, 100.0),
        ("antminer_s21|normal", 2, 3.5, 200.0),
    ]


def test_the_request_uses_stored_prices_and_forecasts_only_the_gaps() -> None:
    hourly = PriceSeries(
        interval_s=3600,
        starts=(T0 - 86_400, T0 - 86_400 + 3600, T0),
        prices_per_kwh=(Decimal("0.05"), Decimal("0.07"), Decimal("0.02")),
    )
    known = known_prices(hourly)
    assert known[T0 + 2 * PERIOD_S] == Decimal("0.02") and len(known) == 12
    window = (datetime.fromtimestamp(T0 + 3600, UTC), datetime.fromtimestamp(T0 + 7200, UTC))
    req = build_request(
        cfg=cfg(horizon_periods=6, cp_windows=[window], cp_charge_per_kw="15", ramp_kw_per_period=7),
        classes=(S21,),
        known=known,
        start=T0,
        initial_on={S21.key: 9},  # clipped to the class
    )
    # four stored quarters of the hour at T0, then the same hour of the day before (a forecast)
    assert req.prices_per_kwh == (Decimal("0.02"),) * 4 + (Decimal("0.07"),) * 2
    assert req.forecast == (False,) * 4 + (True,) * 2
    assert req.initial_on == {S21.key: 4}
    assert [(w.start, w.end, w.charge_per_kw) for w in req.windows] == [(T0 + 3600, T0 + 7200, Decimal(15))]
    assert req.hashprice == (Decimal("0.045"),) * 6 and req.ramp_kw_per_period == 7


def test_minimum_times_carry_across_a_replan_from_what_the_executor_did() -> None:
    # 3 stopped in period T0+P, 2 started in T0+2P (one of them then stopped again), all before the start
    changes = [Change(ts=T0 + PERIOD_S + 7, class_key=S21.key, delta=-1)] * 3 + [
        Change(ts=T0 + 2 * PERIOD_S + 5, class_key=S21.key, delta=1),
        Change(ts=T0 + 2 * PERIOD_S + 6, class_key=S21.key, delta=1),
        Change(ts=T0 + 2 * PERIOD_S + 9, class_key="other", delta=-1),
    ]
    req = build_request(cfg=cfg(min_on_periods=3, min_off_periods=3), classes=(S21,),
                        known={T0: CHEAP}, start=T0 + 3 * PERIOD_S, initial_on={S21.key: 3},
                        changes=changes)  # fmt: skip
    assert req.recent_starts == {S21.key: (0, 2)}  # oldest first: 3 stopped, then 2 started
    assert req.recent_stops == {S21.key: (3, 0)}
    assert req.initial_on == {S21.key: 3}


def test_an_infeasible_configuration_yields_the_fallback_plan_with_its_reason() -> None:
    req = build_request(
        cfg=cfg(site_cap_kw=1.0, ramp_kw_per_period=3.5),
        classes=(S21,),
        known={T0: CHEAP},
        start=T0,
        initial_on={S21.key: 4},
    )
    plan = make_plan(req, now=T0)
    assert plan.status == "fallback:infeasible configuration"
    assert "cap 1 kW is below the minimum load" in plan.explanation
    assert [p.on_by_class[S21.key] for p in plan.periods] == [3, 2, 1, 0]  # shed at the ramp rate


def test_executor_follows_the_planned_minimum_times_with_half_a_period_of_slack() -> None:
    selection = executor_settings(cfg(min_on_periods=4, min_off_periods=2, batch_size=3)).selection
    assert (selection.min_on_s, selection.min_off_s) == (4 * 900 - 450, 2 * 900 - 450)


def one_period_plan(on: int) -> Plan:
    period = PeriodPlan(start=T0, on_by_class={S21.key: on}, reason="price 0.03 below breakeven",
                        price_per_kwh=CHEAP, forecast=False)  # fmt: skip
    return Plan(created_at=T0, period_s=PERIOD_S, classes=(S21,), periods=(period,), status="optimal",
                solver="t", solve_s=0.0, objective_usd=None, lp_bound_usd=None, explanation="")  # fmt: skip


def test_healthy_inputs_follow_the_plan_and_failures_follow_the_policy() -> None:
    full = {S21.key: 4}
    common: dict[str, Any] = {"believed_on": {S21.key: 3}, "full_on": full, "policy": FailPolicy()}
    ok = choose_targets(plan=one_period_plan(2), now=T0 + 10, price_known=True, planner_ok=True, **common)
    assert (ok.on_by_class, ok.source, ok.reason) == ({S21.key: 2}, "plan", "price 0.03 below breakeven")
    stale = choose_targets(plan=one_period_plan(2), now=T0 + 10, price_known=False, planner_ok=True, **common)
    assert (stale.on_by_class, stale.source, stale.failed) == (
        {S21.key: 3},
        "fail_policy",
        (Input.PRICE_FEED,),
    )
    assert stale.reason == "price_feed failed: hold"
    ran_out = choose_targets(plan=one_period_plan(2), now=T0 + PERIOD_S, price_known=True, planner_ok=True,
                             **common)  # fmt: skip
    assert ran_out.failed == (Input.PLANNER,) and ran_out.on_by_class == {S21.key: 3}
    failed = choose_targets(plan=None, now=T0, price_known=True, planner_ok=False,
                            **{**common, "policy": FailPolicy(planner=Response.RESUME)})  # fmt: skip
    assert failed.on_by_class == full and failed.reason == "planner failed: resume"
    in_4cp = FailPolicy(must_curtail_windows=((T0, T0 + 3600),))
    peak = choose_targets(plan=None, now=T0 + 5, price_known=False, planner_ok=False,
                          **{**common, "policy": in_4cp})  # fmt: skip
    assert peak.on_by_class == {S21.key: 0} and "inside a known peak window" in peak.reason


responses = st.sampled_from(list(Response))


@settings(max_examples=100, deadline=None)
@given(
    on_plan=st.integers(0, 4),
    believed=st.integers(0, 4),
    price_known=st.booleans(),
    planner_ok=st.booleans(),
    has_plan=st.booleans(),
    offset=st.integers(-PERIOD_S, 2 * PERIOD_S),
    price_r=responses,
    planner_r=responses,
)
def test_targets_stay_within_the_fleet_and_a_failure_never_runs_the_plan(
    on_plan: int,
    believed: int,
    price_known: bool,
    planner_ok: bool,
    has_plan: bool,
    offset: int,
    price_r: Response,
    planner_r: Response,
) -> None:
    policy = FailPolicy(price_feed=price_r, planner=planner_r)
    plan = one_period_plan(on_plan) if has_plan else None
    got = choose_targets(plan=plan, now=T0 + offset, price_known=price_known, planner_ok=planner_ok,
                         believed_on={S21.key: believed}, full_on={S21.key: 4}, policy=policy)  # fmt: skip
    assert 0 <= got.on_by_class[S21.key] <= 4
    # a failed re-plan does not discard a plan that still covers now
    healthy = price_known and has_plan and 0 <= offset < PERIOD_S
    assert (got.source == "plan") == healthy and (got.failed == ()) == healthy
    if healthy:
        assert got.on_by_class == {S21.key: on_plan}
    elif Response.CURTAIL in {policy.response(i) for i in got.failed}:
        assert got.on_by_class[S21.key] <= believed  # curtailing never starts a miner


@settings(max_examples=100, deadline=None)
@given(
    stored=st.sets(st.integers(-2 * 96, 8), max_size=60),
    horizon=st.integers(1, 8),
    cents=st.integers(-500, 50_000),
)
def test_every_stored_price_is_used_as_is_and_only_gaps_are_forecast(
    stored: set[int], horizon: int, cents: int
) -> None:
    known = {T0 + k * PERIOD_S: Decimal(cents + k) / 1000 for k in stored}
    if not any(ts < T0 + horizon * PERIOD_S for ts in known):
        return  # nothing to forecast from: the service reports that as a planning error
    req = build_request(cfg=cfg(horizon_periods=horizon), classes=(S21,), known=known, start=T0,
                        initial_on={})  # fmt: skip
    for t in range(horizon):
        ts = T0 + t * PERIOD_S
        assert req.forecast[t] == (ts not in known)
        if ts in known:
            assert req.prices_per_kwh[t] == known[ts]
        else:
            assert min(known.values()) <= req.prices_per_kwh[t] <= max(known.values())


SITE_TOML = """
demo = true
[curtail]
enabled = true
price_series = "ercot-hb-south"
hashprice_usd_per_th_day = "0.05"
ramp_kw_per_period = 800.0
cp_windows = [[2026-08-20T16:00:00-05:00, 2026-08-20T17:00:00-05:00]]
cp_charge_per_kw = "15"
fail_policy = { price_feed = "hold" }
"""


def test_the_curtail_section_reads_from_site_toml(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML)
    got = load_settings(path, environ={}).curtail
    assert got.enabled and got.price_series == "ercot-hb-south"
    assert got.hashprice_usd_per_th_day == Decimal("0.05") and got.cp_charge_per_kw == Decimal(15)
    assert [(int(a.timestamp()), int(b.timestamp())) for a, b in got.cp_windows] == [(1787259600, 1787263200)]
    assert policy_from_settings(got).must_curtail_windows == ((1787259600, 1787263200),)
    assert (
        load_settings(None, environ={}, demo=True).curtail.enabled is False
    )  # off unless a site turns it on


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"enabled": True}, "curtail: enabled curtailment needs price_series"),
        ({"fail_policy": {"price_feed": "nap"}}, "curtail.fail_policy.price_feed: Input should be"),
        ({"fail_policy": {"weather": "hold"}}, "fail_policy.weather: unknown input"),
        ({"fail_policy": {"dr_signal": "curtail"}}, "fail_policy.dr_signal: not supported yet"),
        ({"cp_windows": [["2026-08-20T16:00:00", "2026-08-20T17:00:00"]]}, "cp_windows[0]: write times with"),
        ({"cp_windows": [["2026-08-20T17:00:00Z", "2026-08-20T16:00:00Z"]]}, "cp_windows[0]: the start must"),
        ({"price_series": "=HYPERLINK(1)"}, "curtail.price_series: String should match pattern"),
        ({"pool_fee": "1"}, "curtail.pool_fee: Input should be less than 1"),
        ({"ramp_kw_per_period": -5}, "curtail.ramp_kw_per_period: Input should be greater than 0"),
        ({"speed": "fast"}, "curtail.speed: Extra inputs are not permitted"),
    ],
)
def test_a_bad_curtail_setting_is_one_line_naming_its_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={}, demo=True, curtail=section)
    assert message in str(err.value) and "\n" not in str(err.value)


# --- the API when there is nothing to plan, and when curtailment is off -----------------------------------


async def test_with_no_miners_replan_says_why_and_bad_queries_are_refused(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        environ={},
        demo=True,
        polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
        api={"host": API_HOST, "port": 0},
        curtail={"enabled": True, "price_series": "rt"},
    )
    gateway = Gateway(settings, tmp_path, profiles=PROFILES)
    await gateway.start()
    try:
        url = f"http://{API_HOST}:{gateway.api_port}/api/curtail"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            status, body = await get_json(session, url + "/replan", method="POST")
            assert status == 503
            assert body == {"error": "no plan: no inventory miner has a firmware profile: nothing to plan"}
            status, body = await get_json(session, url + "/plan")
            assert status == 200 and body["plan"] is None and body["planner_ok"] is False
            assert (await get_json(session, url + "/events"))[1] == {"events": []}
            for bad in ("0", "abc", "501", "=1+1"):
                status, body = await get_json(session, url + f"/events?limit={bad}")
                assert status == 400 and "limit must be a whole number" in body["error"]
    finally:
        await gateway.stop()


async def test_routes_answer_404_when_curtailment_is_off() -> None:
    app = web.Application()
    add_curtail_routes(app, object())  # a gateway without a curtailment service
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, API_HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            for method, path in (("GET", "plan"), ("GET", "events"), ("POST", "replan")):
                status, body = await get_json(session, f"http://{API_HOST}:{port}/api/curtail/{path}", method)
                assert status == 404 and "curtailment is off" in json.dumps(body)
    finally:
        await runner.cleanup()
