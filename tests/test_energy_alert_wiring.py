"""The runtime's energy-alert wiring on real files: site energy aggregates in a real DuckDB, a tariff
activated in a real state.db, `[energy]` settings -> `EnergyAlertSource` -> `HealthMonitor`'s single
`apply` -> a contract alert opened through the lifecycle, even with no miners in the inventory."""

from __future__ import annotations

from pathlib import Path

from gateway.alerts.lifecycle import AlertLifecycle
from gateway.clock import FakeClock
from gateway.config import load_settings
from gateway.devices.profiles import load_profiles
from gateway.energy.energy_alerts import policy_lookup
from gateway.energy_alert_source import EnergyAlertSource
from gateway.health import HealthMonitor
from gateway.polling import PollCoordinator
from gateway.rules.catalog import CATALOG
from gateway.site_energy_service import SiteEnergyService
from gateway.store.energy_state import activate_tariff, import_tariff
from gateway.store.state import open_state
from gateway.store.telemetry import TelemetryStore

JULY_1 = 1_719_810_000  # 2024-07-01 00:00 America/Chicago
NOW = JULY_1 + 10 * 86_400  # ten days into the month
FLAT = b'name = "flat"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.05"\n'


def test_a_contract_over_its_month_opens_an_alert_through_the_health_cycle(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        demo=True,
        site={"id": "s1", "timezone": "America/Chicago"},
        # 10 days at 100 kW = 24,000 kWh: above 95 % of a 20,000 kWh month already
        energy={"contracts": [{"id": "hosting-a", "monthly_kwh": "20000"}], "alerts": {"peak_lead_min": 0}},
    )
    state = open_state(tmp_path / "state.db")
    tariff_id, _, _ = import_tariff(state, FLAT, source_name="flat.toml", fmt="hashinsight", now=NOW)
    activate_tariff(state, tariff_id, valid_from=JULY_1 - 86_400 * 31, actor="test", now=NOW)
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        store.run(
            lambda conn: conn.execute(
                "INSERT INTO energy_15m SELECT 'm' || m, ? + i * 900, 25000 * 900, 900, 0, 0, 25000.0,"
                " 25000.0"
                " FROM range(4) t(m), range(?) s(i)",
                [JULY_1, (NOW - JULY_1) // 900],
            )
        ).result()
        clock = FakeClock(NOW)
        SiteEnergyService(settings, store, tmp_path / "state.db", clock).start().result()
        source = EnergyAlertSource(settings, store, tmp_path / "state.db", clock)
        source.refresh()

        def fallback(target: str, rule: str):  # type: ignore[no-untyped-def]
            return CATALOG[0]

        lifecycle = AlertLifecycle(state, policy_lookup(fallback))
        monitor = HealthMonitor(
            site_id="s1",
            rules=settings.rules.table(known_models=[]),
            lifecycle=lifecycle,
            profiles=load_profiles(),
            baselines_path=tmp_path / "baselines.npz",
            extra_findings=source.findings,
        )
        poller = PollCoordinator(settings.polling, {}, clock, lambda samples, stats: None)
        for step in range(3):  # the contract policy debounces over two findings
            monitor.evaluate_cycle(poller, {}, NOW + step * 30)
        alerts = lifecycle.list_alerts(now=NOW + 90)
        assert [(a.miner_id, a.rule_id) for a in alerts] == [("contract:hosting-a", "contract_energy_crit")]
        assert alerts[0].open
    finally:
        store.close()
        state.close()
