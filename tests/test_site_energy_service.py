"""The gateway's site energy refresh on real files: a first start computes the previous and current local
months; a restart reads only what it missed (less the lookback); figures are costed when a tariff is in
force."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from gateway.clock import FakeClock
from gateway.config import load_settings
from gateway.site_energy_service import SiteEnergyService
from gateway.store.energy_state import activate_tariff, import_tariff
from gateway.store.site_energy import SELECT_FIGURES, figures_from_rows
from gateway.store.state import open_state
from gateway.store.telemetry import TelemetryStore

JUNE_1 = 1_717_218_000  # 2024-06-01 00:00 America/Chicago
JULY_1 = 1_719_810_000
NOW = JULY_1 + 3 * 86_400
FLAT = b'name = "flat"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.05"\n'


def test_first_start_restart_and_cost(tmp_path: Path) -> None:
    settings = load_settings(environ={}, demo=True, site={"timezone": "America/Chicago"})
    state = open_state(tmp_path / "state.db")
    tariff_id, _, _ = import_tariff(state, FLAT, source_name="flat.toml", fmt="hashinsight", now=NOW)
    activate_tariff(state, tariff_id, valid_from=JUNE_1 - 86_400, actor="test", now=NOW)
    state.close()
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        store.run(
            lambda conn: conn.execute(
                "INSERT INTO energy_15m SELECT 'm0', ? + i * 900, 4000 * 900, 900, 0, 0, 4000.0, 4000.0"
                " FROM range(?) s(i)",
                [JUNE_1 - 86_400, (NOW - JUNE_1 + 86_400) // 900],
            )
        ).result()
        clock = FakeClock(NOW)
        service = SiteEnergyService(settings, store, tmp_path / "state.db", clock)
        first = service.start().result()
        assert first.start == JUNE_1  # the previous local month, not the day before it
        (june,) = figures_from_rows(store.query(SELECT_FIGURES, ["month", JUNE_1, JULY_1]))
        assert (june.start, june.energy.energy_j) == (JUNE_1, 4000 * 900 * 2880)
        assert june.cost == Decimal("144.00")  # 4 kW x 720 h x $0.05
        clock.advance(3600)
        second = service.start().result()
        assert second.start == NOW - settings.energy.site_energy_lookback_s - 900
    finally:
        store.close()
