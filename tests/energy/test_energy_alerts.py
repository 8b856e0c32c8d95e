"""Energy findings through the real alert lifecycle on a real state.db: a contract alert opens at 80 %,
escalates at 95 % and resolves in the next month; the peak warning opens before the peak and resolves at
its start; a flapping price makes one alert; the glue's findings share one `apply` with miner findings."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.model import DEFAULT_POLICY, AlertEvent, AlertPolicy, EventKind, Policy
from gateway.energy.contracts import Contract, MonthToDate
from gateway.energy.energy_alerts import (
    ENERGY_POLICIES,
    EnergyAlertSettings,
    energy_findings,
    is_energy_rule,
    policy_lookup,
)
from gateway.energy.price_alerts import PeakWarningSettings, PriceThresholdSettings
from gateway.energy.tariffs import (
    PriceSeries,
    RatePeriod,
    RateTier,
    RealTimeEnergy,
    Tariff,
    TouEnergy,
    TouSchedule,
    TouWindow,
)
from gateway.energy.units import J_PER_KWH
from gateway.rules.findings import Finding, FindingState, Severity
from gateway.store.state import open_state

CHICAGO = "America/Chicago"
KWH = J_PER_KWH
CONTRACT = Contract(id="c1", monthly_energy_j=1000 * KWH, demand_limit_kw=Decimal(400))
NO_PRICE = EnergyAlertSettings(site_target="site:s1", peak=None)


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_state(tmp_path / "state.db")
    yield db
    db.close()


def lifecycle(conn: sqlite3.Connection) -> AlertLifecycle:
    def rule_table(target: str, rule_id: str) -> AlertPolicy:  # the runtime's catalog lookup stands here
        if rule_id == "overheat":
            return Policy(severity=Severity.P0, debounce_samples=1, clear_window_s=120, cooldown_s=0)
        raise KeyError(rule_id)

    return AlertLifecycle(conn, policy_lookup(rule_table))


def summary(events: list[AlertEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.kind.value, e.miner_id, e.rule_id, e.severity.label) for e in events]


def test_contract_alert_opens_at_80_escalates_at_95_and_resolves_next_month(conn: sqlite3.Connection) -> None:
    alerts = lifecycle(conn)

    def cycle(iso: str, used_kwh: float, peak_kw: int = 100) -> list[tuple[str, str, str, str]]:
        now = z(iso)
        so_far = MonthToDate(
            energy_j=int(used_kwh * KWH), peak_interval_j=min(peak_kw * 900_000, int(used_kwh * KWH))
        )
        found = energy_findings(
            contracts=[(CONTRACT, so_far)], tariff=None, tz=CHICAGO, now=now, settings=NO_PRICE,
            tracked=alerts.pairs_needing_clear(),
        )  # fmt: skip
        return summary(alerts.apply(found, now))

    # November in Chicago: 2026-11-01 05:00Z to 2026-12-01 06:00Z (30 days + the fall-back hour).
    assert cycle("2026-11-15T12:00:00", 350) == []  # 14 d 7 h in: projected 735.7 kWh, 73.6 %
    assert cycle("2026-11-16T12:00:00", 420) == []  # projected 825.1 kWh, 82.5 %: first warn finding
    opened = cycle("2026-11-16T12:30:00", 421)  # second: the debounce is met
    assert opened == [("opened", "contract:c1", "contract_energy_warn", "P2")]
    assert cycle("2026-11-28T12:00:00", 950) == []  # actual 95 %: crit finding 1, warn clear 1
    assert cycle("2026-11-28T12:30:00", 951) == [("opened", "contract:c1", "contract_energy_crit", "P1")]
    assert cycle("2026-11-28T13:00:00", 955) == [("resolved", "contract:c1", "contract_energy_warn", "P2")]
    assert cycle("2026-11-30T23:00:00", 1010) == []  # still critical; over the contract
    # The month turns at local midnight (06:00Z): 0 % used, no projection yet.
    assert cycle("2026-12-01T06:00:00", 0) == []
    assert cycle("2026-12-01T06:30:00", 20) == []
    assert cycle("2026-12-01T07:00:00", 40) == [("resolved", "contract:c1", "contract_energy_crit", "P1")]

    rows = conn.execute(
        "SELECT miner_id, rule_id, severity, state, opened_at, resolved_at, resolved_by, detail "
        "FROM alerts ORDER BY id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("contract:c1", "contract_energy_warn", 2, "resolved", z("2026-11-16T12:30:00"),
         z("2026-11-28T13:00:00"), "system",
         "contract c1: 421 kWh used (42.1 %), projected 826 kWh (82.6 %) of 1,000 kWh"),
        ("contract:c1", "contract_energy_crit", 1, "resolved", z("2026-11-28T12:30:00"),
         z("2026-12-01T07:00:00"), "system", "contract c1: 1,010 kWh used (101.0 %), "
         "projected 1,020 kWh (102.0 %) of 1,000 kWh"),
    ]  # fmt: skip


def test_demand_alert_and_ack_work_on_a_contract_target(conn: sqlite3.Connection) -> None:
    alerts = lifecycle(conn)
    now = z("2026-06-10T12:00:00")
    # 96 kWh in one 15-minute interval = 384 kW: 96 % of the 400 kW limit.
    so_far = MonthToDate(energy_j=5000 * KWH, peak_interval_j=96 * KWH)
    contract = Contract(id="c1", monthly_energy_j=100_000 * KWH, demand_limit_kw=Decimal(400))
    events: list[AlertEvent] = []
    for k in range(2):
        found = energy_findings(contracts=[(contract, so_far)], tariff=None, tz=CHICAGO, now=now + 30 * k,
                                settings=NO_PRICE, tracked=alerts.pairs_needing_clear())  # fmt: skip
        events += alerts.apply(found, now + 30 * k)
    assert summary(events) == [("opened", "contract:c1", "contract_demand_crit", "P1")]
    assert events[0].detail == "contract c1: peak demand 384.0 kW (96.0 %) of the 400 kW limit"
    acked = alerts.ack(events[0].alert_id, "dana", now + 60, note="curtailing rack 3")
    assert acked[0].kind is EventKind.ACKED


def peak_tariff() -> Tariff:
    schedule = TouSchedule(
        windows=(
            TouWindow(period="off", start=time(19), end=time(14)),
            TouWindow(period="peak", start=time(14), end=time(19)),
        )
    )
    periods = tuple(
        RatePeriod(name=n, tiers=(RateTier(rate=Decimal(r)),)) for n, r in (("off", "0.05"), ("peak", "0.25"))
    )
    return Tariff(name="tou", energy=TouEnergy(periods=periods, schedule=schedule), valid_from=0)


def test_peak_warning_opens_before_the_peak_and_resolves_when_it_starts(conn: sqlite3.Connection) -> None:
    alerts = lifecycle(conn)
    tariff = peak_tariff()
    s = EnergyAlertSettings(site_target="site:s1", peak=PeakWarningSettings(lead_s=1800))
    timeline: list[tuple[int, str, int]] = []
    # Every 5 minutes over the spring-forward day and the next (CDT: the 14:00 peak starts at 19:00Z).
    for now in range(z("2026-03-08T12:00:00"), z("2026-03-09T22:00:00"), 300):
        found = energy_findings(contracts=[], tariff=tariff, tz=CHICAGO, now=now, settings=s,
                                tracked=alerts.pairs_needing_clear())  # fmt: skip
        timeline += [(e.ts, e.kind.value, e.alert_id) for e in alerts.apply(found, now)]
    assert timeline == [
        (z("2026-03-08T18:30:00"), "opened", 1),
        (z("2026-03-08T19:00:00"), "resolved", 1),
        (z("2026-03-09T18:30:00"), "opened", 2),  # no cooldown: tomorrow's peak is a new alert
        (z("2026-03-09T19:00:00"), "resolved", 2),
    ]
    (opened,) = conn.execute(
        "SELECT detail FROM alert_events WHERE alert_id = 1 AND kind = 'opened'"
    ).fetchone()
    assert opened == "peak period 'peak' starts at 14:00 CDT (30 min)"
    (latest,) = conn.execute("SELECT detail FROM alerts WHERE id = 1").fetchone()
    assert latest == "peak period 'peak' starts at 14:00 CDT (5 min)"  # the open alert's detail follows


def test_flapping_price_makes_one_alert(conn: sqlite3.Connection) -> None:
    alerts = lifecycle(conn)
    t0 = z("2026-07-01T00:00:00")
    prices = ("0.050", "0.101", "0.099", "0.101", "0.095", "0.085", "0.101", "0.079", "0.060")
    energy = RealTimeEnergy(
        prices=PriceSeries(interval_s=900, starts=tuple(t0 + 900 * i for i in range(len(prices))),
                           prices_per_kwh=tuple(map(Decimal, prices))),
    )  # fmt: skip
    tariff = Tariff(name="rt", energy=energy, valid_from=0)
    s = EnergyAlertSettings(
        site_target="site:s1",
        peak=PeakWarningSettings(),  # a real-time tariff has no peak periods: always clear
        price=PriceThresholdSettings(high_per_kwh=Decimal("0.100"), clear_below_per_kwh=Decimal("0.080")),
    )
    events: list[AlertEvent] = []
    for now in range(t0, t0 + 900 * len(prices), 30):
        found = energy_findings(contracts=[], tariff=tariff, tz=CHICAGO, now=now, settings=s,
                                tracked=alerts.pairs_needing_clear())  # fmt: skip
        events += alerts.apply(found, now)
    assert [(e.kind.value, e.rule_id, e.ts) for e in events] == [
        ("opened", "price_high", t0 + 900),
        ("resolved", "price_high", t0 + 900 * 7),
    ]


def test_removing_a_contract_resolves_its_alerts(conn: sqlite3.Connection) -> None:
    alerts = lifecycle(conn)
    now = z("2026-06-10T12:00:00")
    so_far = MonthToDate(energy_j=990 * KWH, peak_interval_j=0)
    for k in range(2):
        found = energy_findings(contracts=[(CONTRACT, so_far)], tariff=None, tz=CHICAGO, now=now + 30 * k,
                                settings=NO_PRICE, tracked=alerts.pairs_needing_clear())  # fmt: skip
        alerts.apply(found, now + 30 * k)
    assert alerts.pairs_needing_clear() == {("contract:c1", "contract_energy_crit")}
    found = energy_findings(contracts=[], tariff=None, tz=CHICAGO, now=now + 60, settings=NO_PRICE,
                            tracked=alerts.pairs_needing_clear() | {("m1", "overheat")})  # fmt: skip
    assert [(f.miner_id, f.rule_id, f.state, f.detail) for f in found] == [
        ("contract:c1", "contract_energy_crit", FindingState.CLEAR, "no longer configured")
    ]  # a miner's pair is not the glue's to clear
    events = alerts.apply(found, now + 60)
    assert events == []  # clearing: one clear finding, the window is an hour
    found = energy_findings(contracts=[], tariff=None, tz=CHICAGO, now=now + 3660, settings=NO_PRICE,
                            tracked=alerts.pairs_needing_clear())  # fmt: skip
    assert summary(alerts.apply(found, now + 3660)) == [
        ("resolved", "contract:c1", "contract_energy_crit", "P1")
    ]


def miner(state: FindingState, ts: int) -> Finding:
    return Finding(miner_id="m1", rule_id="overheat", severity=Severity.P0, state=state, ts=ts, detail="hot")


def test_one_apply_per_cycle_keeps_both_sides_clocks_running(conn: sqlite3.Connection) -> None:
    """The wiring the runtime must use: health and energy findings concatenated into one `apply`. The
    miner's 120 s clear window runs while a contract alert is open beside it."""
    alerts = lifecycle(conn)
    t0 = z("2026-06-10T12:00:00")
    so_far = MonthToDate(energy_j=990 * KWH, peak_interval_j=0)
    kinds: list[tuple[str, str, int]] = []
    for k in range(8):
        now = t0 + 30 * k
        energy = energy_findings(contracts=[(CONTRACT, so_far)], tariff=None, tz=CHICAGO, now=now,
                                 settings=NO_PRICE, tracked=alerts.pairs_needing_clear())  # fmt: skip
        health = [miner(FindingState.FIRING if k < 2 else FindingState.CLEAR, now)]
        kinds += [(e.kind.value, e.rule_id, e.ts - t0) for e in alerts.apply([*health, *energy], now)]
    assert kinds == [
        ("opened", "overheat", 0),
        ("opened", "contract_energy_crit", 30),
        ("resolved", "overheat", 180),  # clear from 60 s, held 120 s
    ]


def test_two_applies_per_cycle_would_starve_the_clear_window(conn: sqlite3.Connection) -> None:
    """Why the glue must not call `apply` on its own: each call treats the other's tracked pairs as
    unknown, which pauses their clear windows, so the miner's alert never resolves."""
    alerts = lifecycle(conn)
    t0 = z("2026-06-10T12:00:00")
    so_far = MonthToDate(energy_j=990 * KWH, peak_interval_j=0)
    resolved = []
    for k in range(40):
        now = t0 + 30 * k
        health = [miner(FindingState.FIRING if k < 2 else FindingState.CLEAR, now)]
        resolved += [e for e in alerts.apply(health, now) if e.kind is EventKind.RESOLVED]
        energy = energy_findings(contracts=[(CONTRACT, so_far)], tariff=None, tz=CHICAGO, now=now,
                                 settings=NO_PRICE, tracked=alerts.pairs_needing_clear())  # fmt: skip
        alerts.apply(energy, now)
    assert resolved == []  # 20 minutes clear, window 120 s: starved


def test_policies_and_rule_names() -> None:
    def fallback(target: str, rule_id: str) -> AlertPolicy:
        raise KeyError(rule_id)

    lookup = policy_lookup(fallback)
    assert lookup("contract:c1", "contract_energy_crit") is ENERGY_POLICIES["contract_energy_crit"]
    with pytest.raises(KeyError):
        lookup("m1", "overheat_crit")  # the lifecycle turns this into DEFAULT_POLICY
    assert ENERGY_POLICIES["tou_peak_soon"].cooldown_s == 0 != DEFAULT_POLICY.cooldown_s
    assert is_energy_rule("price_high") and not is_energy_rule("overheat_crit")
    with pytest.raises(TypeError):
        ENERGY_POLICIES["x"] = DEFAULT_POLICY  # type: ignore[index]
    with pytest.raises(ValueError, match="site_target"):
        EnergyAlertSettings(site_target="contract:c1")
    with pytest.raises(ValueError, match="site_target"):
        EnergyAlertSettings(site_target="site:")
    assert EnergyAlertSettings(site_target="site:s-1").site_target == "site:s-1"
