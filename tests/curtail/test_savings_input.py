"""The savings adapter: from the executor's verified actions, metered energy, profiles, baselines and tariff
to curtailed intervals and settlement credits. Real state.db (open_state) and a real DuckDB file with the
telemetry schema; figures worked by hand; hypothesis properties for the invariants."""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gateway.cli.curtail import curtail_app
from gateway.curtail.savings import UNASSIGNED, CurtailedInterval, Economics, attribute
from gateway.curtail.savings_input import (
    ActionRow,
    EnergyRow,
    MinerFigures,
    SavingsInput,
    build_intervals,
    credits_from_intervals,
)
from gateway.curtail.savings_read import credits_for_period, load_savings_input
from gateway.devices.profiles import ProfileCatalog, load_profiles
from gateway.energy.settlement_model import Assignment
from gateway.energy.tariff_prices import energy_price_fn
from gateway.energy.units import J_PER_KWH, round_money
from gateway.store.energy_state import activate_tariff, assign_miners, import_tariff, tariff_history
from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry_schema import SCHEMA

T0 = 1_717_200_000  # 2024-06-01 00:00 UTC, on the 15-minute grid
DAY = 86_400
SLEEP_J = 15 * 900  # a sleeping S19j Pro / S21: 15 W for an interval
FLAT_TOML = b'name = "Host flat"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.05"\n'
PROFILES = load_profiles()
ECON = Economics(hashprice_usd_per_th_day=Decimal("0.045"), pool_fee=Decimal("0.02"))
runner = CliRunner()


@dataclass
class Site:
    root: Path
    state: sqlite3.Connection
    telemetry: duckdb.DuckDBPyConnection

    def act(
        self, miner: str, ts: int | str, action: str, status: str = "verified", source: str = "plan"
    ) -> None:
        event = self.state.execute(
            "INSERT INTO curtail_events (started_ts, source, reason, targets) VALUES (?, ?, 'test', '{}')",
            (T0, source),
        ).lastrowid
        self.state.execute(
            "INSERT INTO curtail_actions (event_id, ts, miner_id, action, reason, status)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event, ts, miner, action, source, status),
        )
        self.state.commit()

    def energy(self, miner: str, start: int, joules: int, covered_s: int = 900) -> None:
        self.telemetry.execute(
            "INSERT OR REPLACE INTO energy_15m VALUES (?, ?, ?, ?, ?, 0, NULL, NULL)",
            [miner, start, joules, covered_s, 900 - covered_s],
        )

    def mining_day(self, miner: str, day_start: int, watts: int) -> None:
        for i in range(96):
            self.energy(miner, day_start + i * 900, watts * 900)

    def bucket(self, miner: str, ts: int, power_w: float, mining_s: int = 300) -> None:
        self.telemetry.execute(
            "INSERT INTO samples_5m VALUES (?, ?, 10, 100.0, ?, 60.0, 3000, 3, 100, ?)",
            [miner, ts, power_w, mining_s],
        )

    def savings(
        self, start: int = T0, end: int = T0 + DAY, priced: bool = True
    ) -> tuple[CurtailedInterval, ...]:
        return self.load(start, end, priced).intervals

    def load(self, start: int = T0, end: int = T0 + DAY, priced: bool = True) -> SavingsInput:
        price = energy_price_fn(
            tariff_history(self.state, start=start, end=end, demand_interval_s=900), "UTC"
        )
        return load_savings_input(
            state=self.state,
            telemetry=self.telemetry,
            start=start,
            end=end,
            profiles=PROFILES,
            price_fn=price if priced else None,
        )


def _site(root: Path) -> Site:
    state = open_state(root / "state.db")
    upsert_miners(
        state,
        [
            InventoryRow(id="m1", ip="10.0.0.1", family="antminer", profile_key="antminer_s19j_pro"),
            InventoryRow(id="m2", ip="10.0.0.2", family="antminer", profile_key="antminer_s21"),
            InventoryRow(id="m3", ip="10.0.0.3", family="antminer", profile_key="no_such_model"),
            InventoryRow(id="m4", ip="10.0.0.4", family="antminer", profile_key=None),
        ],
        now=T0 - 30 * DAY,
    )
    assign_miners(state, ["m1"], "acme", at=T0 - 30 * DAY, now=T0 - 30 * DAY)
    assign_miners(state, ["m2"], "bitfarm", at=T0 - 30 * DAY, now=T0 - 30 * DAY)
    assign_miners(state, ["m2"], "acme", at=T0 + 2100, now=T0)  # mid-interval [1800, 2700)
    tariff_id, _, _ = import_tariff(
        state, FLAT_TOML, source_name="flat.toml", fmt="hashinsight", now=T0 - DAY
    )
    activate_tariff(state, tariff_id, valid_from=T0 - 30 * DAY, actor="test", now=T0 - DAY)
    telemetry = duckdb.connect(str(root / "telemetry.duckdb"))
    telemetry.execute(SCHEMA)
    return Site(root=root, state=state, telemetry=telemetry)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = _site(tmp_path)
    yield s
    s.state.close()
    s.telemetry.close()


def _assignments(site: Site) -> list[Assignment]:
    from gateway.store.energy_state import assignments_between

    return assignments_between(site.state, T0, T0 + DAY)


def test_one_miner_by_hand(site: Site) -> None:
    site.act("m1", T0 + 600, "sleep")
    site.act("m1", T0 + 2700, "wake")
    site.mining_day("m1", T0, 3050)
    site.energy("m1", T0, 600 * 3050 + 300 * 15)  # slept at :10
    site.energy("m1", T0 + 900, SLEEP_J)
    site.energy("m1", T0 + 1800, SLEEP_J)
    # baseline: hour 0 UTC of the 7 previous days, fully-mining buckets only -> (12 x 3100 + 12 x 3300) / 24
    for i in range(12):
        site.bucket("m1", T0 - DAY + i * 300, 3100.0)
        site.bucket("m1", T0 - 2 * DAY + i * 300, 3300.0)
    site.bucket("m1", T0 - 2 * DAY + 3600, 500.0)  # hour 1: another hour
    site.bucket("m1", T0 - 3 * DAY, 500.0, mining_s=150)  # half asleep: not a baseline
    site.bucket("m1", T0 - 8 * DAY, 9999.0)  # older than the window
    site.bucket("m1", T0, 9999.0)  # the same day: not "before the interval's day"

    got = site.load()
    assert [(r.interval_start - T0, r.curtailed_s, r.actual_j) for r in got.intervals] == [
        (0, 300, 611_500),  # pro rata: ceil(1,834,500 J x 300 / 900) - the mining part is included
        (900, 900, SLEEP_J),
        (1800, 900, SLEEP_J),
    ]
    assert {(r.profile_w, r.ths, r.price_per_kwh, r.strategy, r.baseline_w) for r in got.intervals} == {
        (3050.0, 100.0, Decimal("0.05"), "plan", 3200.0)
    }
    (line,) = attribute(got.intervals, ECON, assignments=_assignments(site))
    # 3050 W x 2100 s - (611,500 + 13,500 + 13,500) J = 6,405,000 - 638,500
    assert (line.customer_id, line.curtailed_s, line.conservative_saved_j) == ("acme", 2100, 5_766_500)
    assert line.baseline_saved_j == 3200 * 2100 - 638_500
    # 1.6018 kWh x $0.05 = 0.0801; forgone 100 TH x 2100 s x 0.045 x 0.98 / 86,400 = 0.1072
    assert (line.conservative_cost_saved, line.revenue_forgone, line.net_benefit) == (
        Decimal("0.08"),
        Decimal("0.11"),
        Decimal("-0.03"),
    )
    assert got.anomalies.as_dict() == {
        "wake_without_sleep": 0,
        "repeat_sleep": 0,
        "out_of_order": 0,
        "malformed": 0,
        "unknown_profile": 0,
        "no_energy": 0,
        "unpriced": 0,
        "unknown_profile_miners": [],
    }


def _two_miners(site: Site) -> None:
    site.act("m1", T0 + 900, "sleep")
    site.act("m1", T0 + 2700, "wake")
    site.act("m2", T0 + 1800, "sleep", source="override")
    site.act("m2", T0 + 3600, "wake", source="override")
    for miner, watts in (("m1", 3050), ("m2", 3500)):
        site.mining_day(miner, T0, watts)
    for start in (T0 + 900, T0 + 1800):
        site.energy("m1", start, SLEEP_J)
    for start in (T0 + 1800, T0 + 2700):
        site.energy("m2", start, SLEEP_J)


def test_reassigned_mid_interval_goes_to_the_owner_at_the_interval_start(site: Site) -> None:
    _two_miners(site)
    lines = attribute(site.savings(), ECON, assignments=_assignments(site))
    got = {(x.strategy, x.customer_id): (x.curtailed_s, x.conservative_saved_j) for x in lines}
    saved_m2 = 3500 * 900 - SLEEP_J
    assert got == {
        ("plan", "acme"): (1800, 2 * (3050 * 900 - SLEEP_J)),
        ("override", "bitfarm"): (900, saved_m2),  # [1800, 2700): bitfarm owned it at 1800
        ("override", "acme"): (900, saved_m2),  # [2700, 3600): acme's
    }


def test_credits_for_period_per_kwh_and_lump(site: Site) -> None:
    _two_miners(site)
    site.telemetry.close()
    site.telemetry = duckdb.connect(str(site.root / "telemetry.duckdb"), read_only=True)  # as settle opens it
    price = energy_price_fn(tariff_history(site.state, start=T0, end=T0 + DAY, demand_interval_s=900), "UTC")
    credits = functools.partial(
        credits_for_period,
        state=site.state,
        telemetry=site.telemetry,
        start=T0,
        end=T0 + DAY,
        assignments=_assignments(site),
        profiles=PROFILES,
        hashprice_usd_per_th_day=Decimal("0.045"),
    )
    acme_j = 2 * (3050 * 900 - SLEEP_J) + (3500 * 900 - SLEEP_J)  # 8,599,500 J = 2.38875 kWh
    bitfarm_j = 3500 * 900 - SLEEP_J  # 3,136,500 J = 0.87125 kWh
    per_kwh = credits(pool_fee_pct=Decimal(2), price_fn=price, credit_per_kwh=Decimal("0.03"))
    assert [(c.customer_id, c.energy_j, c.per_kwh, c.amount) for c in per_kwh] == [
        ("acme", acme_j, Decimal("0.03"), None),
        ("bitfarm", bitfarm_j, Decimal("0.03"), None),
    ]
    assert per_kwh[0].description.startswith("Curtailment credit: 2.389 kWh saved at 0.03/kWh (conservative")
    lump = credits(pool_fee_pct=Decimal(2), price_fn=price, credit_per_kwh=None)
    # 2.38875 kWh x 0.05 = 0.1194375 -> 0.12; 0.87125 x 0.05 = 0.0435625 -> 0.04 (rounded once each)
    assert [(c.customer_id, c.amount, c.energy_j) for c in lump] == [
        ("acme", Decimal("0.12"), None),
        ("bitfarm", Decimal("0.04"), None),
    ]
    assert "kWh saved, energy cost avoided" in lump[1].description
    with pytest.raises(ValueError, match="need a price"):
        credits(pool_fee_pct=Decimal(2), price_fn=None, credit_per_kwh=None)
    with pytest.raises(ValueError, match="pool_fee"):
        credits(pool_fee_pct=Decimal(150), price_fn=price, credit_per_kwh=None)


def test_site_miners_and_negative_totals_give_no_credit() -> None:
    owners = [Assignment(miner_id="m1", customer_id="acme", start=T0)]
    row = CurtailedInterval(
        miner_id="m1",
        interval_start=T0,
        curtailed_s=900,
        actual_j=3_000_000,  # drew more than the 3050 W profile while "curtailed"
        profile_w=3050.0,
        ths=100.0,
        price_per_kwh=Decimal("0.05"),
        strategy="plan",
    )
    site_row = dataclasses.replace(row, miner_id="m9", actual_j=0)  # no owner: the site's own miner
    assert credits_from_intervals([row, site_row], assignments=owners, credit_per_kwh=None) == ()
    assert credits_from_intervals([row, site_row], assignments=owners, credit_per_kwh=Decimal("1")) == ()


def test_bad_rows_are_handled_and_counted(site: Site) -> None:
    site.mining_day("m1", T0, 3050)
    site.act("m1", T0 + 300, "wake")  # a wake without a sleep
    site.act("m1", T0 + 9000, "wake")  # inserted before the sleep it ends: time runs backwards
    site.act("m1", T0 + 8100, "sleep")
    site.act("m1", T0 + 20_000, "sleep", status="failed")  # not verified: nothing happened
    site.act("m1", T0 + 21_000, "sleep", status="dry_run")
    site.act("m1", T0 + 22_000, "set_power")  # not a sleep
    site.act("m1", "soon", "sleep")  # a ts that is not a number
    site.act("m3", T0, "sleep")  # profile key unknown to the catalog: the whole day
    site.act("m4", T0 + DAY - 900, "sleep")  # no profile key at all: one interval
    site.act("m2", T0 + 3600, "sleep")  # no metered energy for m2
    site.act("m2", T0 + 5400, "wake")
    got = site.load()
    assert [(r.miner_id, r.interval_start - T0, r.curtailed_s) for r in got.intervals] == [("m1", 8100, 900)]
    a = got.anomalies
    assert (a.wake_without_sleep, a.out_of_order, a.malformed, a.repeat_sleep) == (1, 1, 1, 0)
    assert (a.unknown_profile, a.no_energy, a.unpriced) == (96 + 1, 2, 0)
    assert a.unknown_profile_miners == ("m3", "m4")


def test_repeat_sleep_hands_over_the_strategy_and_no_price_is_counted(site: Site) -> None:
    site.mining_day("m1", T0, 3050)
    site.act("m1", T0, "sleep", source="plan")
    site.act("m1", T0 + 450, "sleep", source="override")  # drift re-dispatch by an override
    site.act("m1", T0 + 900, "wake")
    site.energy("m1", T0, SLEEP_J)
    got = site.load(priced=False)
    assert [(r.strategy, r.curtailed_s, r.actual_j, r.price_per_kwh) for r in got.intervals] == [
        ("plan", 450, SLEEP_J // 2, Decimal(0)),
        ("override", 450, SLEEP_J // 2, Decimal(0)),
    ]
    assert (got.anomalies.repeat_sleep, got.anomalies.unpriced) == (1, 2)


def test_state_at_the_period_start_comes_from_before_it(site: Site) -> None:
    site.mining_day("m1", T0, 3050)
    site.mining_day("m2", T0, 3500)
    site.act("m1", T0 - 5 * DAY, "sleep")  # asleep since long before the period
    site.act("m1", T0 + 1800, "wake")
    site.act("m2", T0 - 2 * DAY, "sleep")
    site.act("m2", T0 - DAY, "wake")  # awake again before the period: nothing
    site.act("m2", T0 + 3 * DAY, "sleep")  # after the period: nothing
    got = site.load()
    assert [(r.miner_id, r.interval_start - T0, r.curtailed_s) for r in got.intervals] == [
        ("m1", 0, 900),
        ("m1", 900, 900),
    ]
    assert got.anomalies.wake_without_sleep == 0


def test_reading_two_halves_gives_the_whole(site: Site) -> None:
    _two_miners(site)
    site.act("m1", T0 + 40_000, "sleep")
    whole = site.savings(T0, T0 + DAY)
    mid = T0 + 2250  # not on the grid: the interval [1800, 2700) is cut in two
    halves = site.savings(T0, mid) + site.savings(mid, T0 + DAY)
    assert sum(r.curtailed_s for r in whole) == sum(r.curtailed_s for r in halves) == 2 * 1800 + 46_400
    assert _saved(whole) == _saved(halves)


def _saved(rows: tuple[CurtailedInterval, ...] | list[CurtailedInterval]) -> Fraction:
    return sum((Fraction(r.profile_w) * r.curtailed_s - r.actual_j for r in rows), Fraction(0))


# --- properties ---------------------------------------------------------------------------------------

FIGURES = {"m1": MinerFigures(profile_w=3050.0, ths=100.0), "m2": MinerFigures(profile_w=3472.5, ths=200.0)}
actions_st = st.lists(
    st.tuples(
        st.sampled_from(["m1", "m2", "m3"]), st.integers(-DAY, 2 * DAY), st.sampled_from(["sleep", "wake"])
    ),
    max_size=12,
)
energy_st = st.dictionaries(
    st.tuples(st.sampled_from(["m1", "m2", "m3"]), st.integers(0, 2 * 96 - 1)),
    st.tuples(st.integers(0, 4_000 * 900), st.integers(0, 900)),
    max_size=120,
)


def _rows(actions: list[tuple[str, int, str]]) -> list[ActionRow]:
    return [
        ActionRow(id=i, miner_id=m, ts=T0 + t, action=a, strategy=("plan", "override")[i % 2])
        for i, (m, t, a) in enumerate(actions)
    ]


def _energy(energy: dict[tuple[str, int], tuple[int, int]]) -> list[EnergyRow]:
    return [
        EnergyRow(miner_id=m, interval_start=T0 + i * 900, joules=j, covered_s=c)
        for (m, i), (j, c) in energy.items()
    ]


def _build(
    actions: list[ActionRow], energy: list[EnergyRow], start: int, end: int
) -> list[CurtailedInterval]:
    return list(
        build_intervals(
            actions=actions,
            energy=energy,
            history=(),
            figures=FIGURES,
            price_fn=lambda ts: Decimal(ts // 900 % 7 - 2) / 10,  # negative prices too
            start=start,
            end=end,
        ).intervals
    )


@settings(max_examples=100, deadline=None)
@given(actions=actions_st, energy=energy_st, cut=st.integers(1, 2 * 96 - 1))
def test_property_two_halves_equal_the_whole(
    actions: list[tuple[str, int, str]], energy: dict[tuple[str, int], tuple[int, int]], cut: int
) -> None:
    rows, metered = _rows(actions), _energy(energy)
    mid = T0 + cut * 900
    whole = _build(rows, metered, T0, T0 + 2 * DAY)
    halves = _build(rows, metered, T0, mid) + _build(rows, metered, mid, T0 + 2 * DAY)
    assert sorted(whole, key=repr) == sorted(halves, key=repr)
    assert _saved(whole) == _saved(halves)


@settings(max_examples=100, deadline=None)
@given(actions=actions_st, energy=energy_st, rate=st.none() | st.decimals(0, 1, places=3))
def test_property_credits_never_exceed_the_conservative_saving(
    actions: list[tuple[str, int, str]], energy: dict[tuple[str, int], tuple[int, int]], rate: Decimal | None
) -> None:
    owners = [
        Assignment(miner_id="m1", customer_id="acme", start=T0, end=T0 + DAY),
        Assignment(miner_id="m1", customer_id="bitfarm", start=T0 + DAY),
        Assignment(miner_id="m2", customer_id="acme", start=T0 + 3 * 3600),
    ]
    intervals = _build(_rows(actions), _energy(energy), T0, T0 + 2 * DAY)
    credits = credits_from_intervals(intervals, assignments=owners, credit_per_kwh=rate)
    assert len({c.customer_id for c in credits}) == len(credits)
    saved: dict[str, Fraction] = {}
    money: dict[str, Fraction] = {}
    for r in intervals:
        owner = _owner(r, owners)
        saved[owner] = saved.get(owner, Fraction(0)) + _saved([r])
        money[owner] = money.get(owner, Fraction(0)) + _saved([r]) * Fraction(r.price_per_kwh) / J_PER_KWH
    for credit in credits:
        assert credit.customer_id != UNASSIGNED
        if rate is not None:
            assert credit.energy_j is not None and 0 < credit.energy_j <= saved[credit.customer_id]
        else:
            assert credit.amount is not None and credit.amount > 0
            assert credit.amount == round_money(money[credit.customer_id])
            assert credit.amount <= money[credit.customer_id] + Fraction(1, 200)
    if rate is not None:  # and nobody with a whole joule saved is left out
        owed = {c for c, j in saved.items() if c != UNASSIGNED and j >= 1}
        assert {c.customer_id for c in credits} == owed


def _owner(row: CurtailedInterval, owners: list[Assignment]) -> str:
    lines = attribute([row], ECON, assignments=owners)
    return lines[0].customer_id


@settings(max_examples=15, deadline=None)
@given(
    actions=st.lists(
        st.tuples(st.sampled_from(["m1", "m2"]), st.integers(-DAY, DAY), st.booleans()), max_size=8
    ),
    cut=st.integers(1, 95),
)
def test_property_stored_record_read_in_halves_equals_the_whole(
    actions: list[tuple[str, int, bool]], cut: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = _site(Path(tmp))
        try:
            site.mining_day("m1", T0, 3050)
            site.mining_day("m2", T0, 3500)
            for miner, t, sleep in actions:
                site.act(miner, T0 + t, "sleep" if sleep else "wake")
            whole = site.savings(T0, T0 + DAY)
            halves = site.savings(T0, T0 + cut * 900) + site.savings(T0 + cut * 900, T0 + DAY)
            assert sorted(whole, key=repr) == sorted(halves, key=repr)
        finally:
            site.state.close()
            site.telemetry.close()


# --- the command --------------------------------------------------------------------------------------


def _cli(site: Site, *args: str) -> tuple[int, str]:
    site.state.close()
    site.telemetry.close()
    config = site.root / "site.toml"
    config.write_text('[site]\ntimezone = "UTC"\n', encoding="utf-8")
    result = runner.invoke(
        curtail_app, ["savings", *args, "--config", str(config), "--data-dir", str(site.root)]
    )
    return result.exit_code, result.output


def test_cli_json_and_table(site: Site) -> None:
    _two_miners(site)
    site.act("m3", T0, "sleep")
    code, out = _cli(site, "--period", "2024-06", "--json")
    assert code == 0, out
    payload = json.loads(out)
    assert payload["priced"] is True and payload["anomalies"]["unknown_profile_miners"] == ["m3"]
    first = payload["lines"][0]
    assert first == {
        "day": "2024-06-01",
        "strategy": "override",
        "customer_id": "acme",
        "curtailed_s": 900,
        "conservative_saved_kwh": "0.871",
        "baseline_saved_kwh": None,
        "baseline_covered_s": 0,
        "conservative_cost_saved": "0.04",
        "baseline_cost_saved": None,
        "revenue_forgone": "0.09",
        "net_benefit": "-0.05",
    }


@pytest.mark.parametrize("period", ["2024-13", "24-06", '=HYPERLINK("http://x")', "2024-06\n", "9" * 10_000])
def test_cli_refuses_bad_periods_with_one_line(site: Site, period: str) -> None:
    code, out = _cli(site, "--period", period)
    assert code == 2 and "Traceback" not in out and out.strip().count("\n") == 0


def test_cli_refuses_bad_numbers_and_a_missing_telemetry_file(site: Site) -> None:
    code, out = _cli(site, "--period", "2024-06", "--hashprice", "NaN")
    assert code == 2 and "--hashprice" in out
    code, out = _cli(site, "--period", "2024-06", "--pool-fee", "1.5")
    assert code == 2 and "pool_fee" in out
    (site.root / "telemetry.duckdb").unlink()
    code, out = _cli(site, "--period", "2024-06")
    assert code == 1 and "no telemetry" in out


def test_cli_table_counts_what_did_not_fit(site: Site) -> None:
    _two_miners(site)
    site.act("m1", T0 + 5 * 3600, "wake")
    site.act("m4", T0, "sleep")
    code, out = _cli(site, "--period", "2024-06")
    assert code == 0, out
    assert "2024-06-01  plan         acme" in out
    assert "wake_without_sleep=1" in out and "miners without a known profile: m4" in out


def test_profiles_come_from_the_catalog() -> None:
    assert isinstance(PROFILES, ProfileCatalog)
    assert PROFILES.get("antminer_s21").modes  # the figures the tests rely on
