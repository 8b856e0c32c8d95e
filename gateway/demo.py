"""`hashinsight demo`: a simulated site and a real gateway reading it, on embedded defaults.

The simulator serves ~120 virtual miners of mixed models and firmwares on loopback addresses; they
are registered in a fresh inventory (spread over three hosting customers), a few are given faults,
and the gateway polls them exactly as it would a real site: same drivers, same stores, same local
API. The terminal shows what a site lead would look at first. Everything lives in a temporary data
directory unless `--data-dir` is given, and is removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from gateway.api import fleet
from gateway.config import load_settings
from gateway.devices.profiles import ProfileCatalog
from gateway.runtime import Gateway
from gateway.simulator.faults import Fault
from gateway.simulator.fleet import DEFAULT_MIX
from gateway.simulator.run import Simulator, SimulatorConfig
from gateway.store.energy_state import activate_tariff, import_tariff, list_tariffs
from gateway.store.state import InventoryRow, open_state, upsert_miners

log = logging.getLogger(__name__)

CUSTOMERS = ("acme-hosting", "northwind-mining", "solaris-capital")
DEMO_POOLS = ("stratum+tcp://pool.hashinsight.test:3333", "stratum+tcp://backup.hashinsight.test:3333")
# (miner index, fault, params): one of each kind a technician must notice in the first minutes.
DEMO_FAULTS: tuple[tuple[int, str, dict[str, Any]], ...] = (
    (3, "overheat", {"extra_c": 28.0}),
    (11, "dead_board", {"slot": 1}),
    (19, "fan_stop", {}),
    (27, "hung", {}),
    (35, "stale_shares", {}),
    (43, "pool_changed", {"url": "stratum+tcp://unknown-pool.example:3333"}),
    (51, "offline", {}),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    miners: int = 120
    seed: int = 7
    first_address: str = "127.77.0.1"
    interval_s: float = 10.0
    api_port: int = 8470
    data_dir: Path | None = None
    duration_s: float | None = None


def free_port_or_any(port: int) -> int:
    """The requested port if it is free on 127.0.0.1, else 0 (any): a demo must not fail on a busy port."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def register(data_dir: Path, simulator: Simulator) -> None:
    conn = open_state(data_dir / "state.db")
    try:
        rows = [
            InventoryRow(
                id=miner.identity.mac.lower(),
                ip=miner.ip,
                family=miner.identity.family.value,
                make=miner.identity.make,
                model=miner.identity.model,
                profile_key=miner.profile.key,
                mac=miner.identity.mac,
                serial=miner.identity.serial,
                hostname=miner.identity.hostname,
                web_port=simulator.servers.web_port,
                customer_id=CUSTOMERS[index % len(CUSTOMERS)],
                rack=f"R{index // 24 + 1:02d}",
            )
            for index, miner in enumerate(simulator.miners)
        ]
        upsert_miners(conn, rows, int(time.time()))
    finally:
        conn.close()


# A host's time-of-use customer rate with a demand charge, so the demo's site energy figures carry cost and
# `hashinsight settle` has something to settle. Illustrative figures, not any utility's.
DEMO_TARIFF = b"""name = "Demo hosting TOU"
[energy]
type = "tou"
periods = { peak = "0.12", off-peak = "0.045" }
[[energy.windows]]
period = "peak"
days = "weekdays"
start = "14:00"
end = "19:00"
[[energy.windows]]
period = "off-peak"
days = "weekdays"
start = "19:00"
end = "14:00"
[[energy.windows]]
period = "off-peak"
days = "weekend"
[demand]
rate_per_kw = "8.50"
"""


def install_demo_tariff(data_dir: Path, now: int) -> None:
    """Import and activate the demo tariff once, in force from well before the demo's first reading.
    Kept apart from `register` (which tests reuse to build sites): only the demo wants a tariff."""
    conn = open_state(data_dir / "state.db")
    try:
        _demo_tariff(conn, now)
    finally:
        conn.close()


def _demo_tariff(conn: sqlite3.Connection, now: int) -> None:
    if list_tariffs(conn):
        return  # a kept --data-dir already has its tariff history
    tariff_id, _, _ = import_tariff(
        conn, DEMO_TARIFF, source_name="demo-tariff.toml", fmt="hashinsight", now=now
    )
    activate_tariff(conn, tariff_id, valid_from=now - now % 86_400 - 62 * 86_400, actor="demo", now=now)


async def run_demo(options: DemoOptions, profiles: ProfileCatalog, console: Console) -> None:
    own_dir = options.data_dir is None
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="hashinsight-demo-"))
    simulator = Simulator(
        SimulatorConfig(
            miners=options.miners,
            mix=DEFAULT_MIX,
            seed=options.seed,
            first_address=options.first_address,
            control_port=0,
        ),
        profiles,
    )
    settings = load_settings(
        None,
        demo=True,
        site={"id": "demo-site", "name": "HashInsight demo site"},
        polling={"interval_s": options.interval_s, "deadline_s": min(5.0, options.interval_s / 3)},
        api={"port": free_port_or_any(options.api_port)},
        # The simulated site's own pools; a miner pointed elsewhere is an alert. Shares are judged
        # stale sooner than on a real site so the demo shows it within a minute or two.
        rules={"allowed_pools": list(DEMO_POOLS), "shares_stale": {"stale_after_s": 60}},
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    gateway: Gateway | None = None
    try:
        register(data_dir, simulator)
        install_demo_tariff(data_dir, int(time.time()))
        for index, kind, params in DEMO_FAULTS:
            if index < len(simulator.miners):
                miner = simulator.miners[index]
                miner.inject(Fault.make(kind, **params))
                await simulator.servers.sync_offline(miner)
        gateway = Gateway(settings, data_dir, profiles=profiles)
        await gateway.start()
        console.print(
            f"[bold]HashInsight demo[/]: {len(simulator.miners)} simulated miners on "
            f"{simulator.miners[0].ip} - {simulator.miners[-1].ip}; data in {data_dir}; "
            f"local API http://127.0.0.1:{gateway.api_port}/api/fleet; Ctrl-C to stop.",
            soft_wrap=True,
        )
        await _display(gateway, stop, console, options.duration_s)
    finally:
        if gateway is not None:
            await gateway.stop()
        await simulator.stop()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
    console.print("demo stopped cleanly")


async def _display(gateway: Gateway, stop: asyncio.Event, console: Console, duration_s: float | None) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    seen_cycles = 0
    announced: set[int] = set()
    live = Live(console=console, refresh_per_second=2, transient=False) if console.is_terminal else None
    with live if live is not None else contextlib.nullcontext():
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            now = time.time()
            view = fleet(gateway, now)
            alerts = [a.to_dict(int(now)) for a in gateway.alerts.list_alerts(now=int(now))]
            cycles = gateway.poller.totals.cycles
            if live is not None:
                live.update(_render(view, alerts, gateway))
            elif cycles != seen_cycles:
                console.print(_plain_line(view, cycles, alerts), highlight=False, soft_wrap=True)
                for alert in alerts:
                    if alert["id"] not in announced:
                        announced.add(alert["id"])
                        console.print(f"  alert {_alert_line(alert, view)}", highlight=False, soft_wrap=True)
            seen_cycles = cycles
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _alert_line(alert: dict[str, Any], view: dict[str, Any]) -> str:
    miner = next((m for m in view["miners"] if m["id"] == alert["miner_id"]), None)
    where = f"{miner['ip']} {miner['make']} {miner['model']}" if miner else alert["miner_id"]
    return f"{alert['severity']} {alert['rule']:22} {where}: {alert['detail']}"


def _render(view: dict[str, Any], alerts: list[dict[str, Any]], gateway: Gateway) -> Group:
    totals = view["totals"]
    summary = Table.grid(padding=(0, 2))
    availability = totals["by_availability"]
    last = totals["last_cycle"] or {}
    summary.add_row(
        "miners",
        str(totals["miners"]),
        "ok",
        str(availability["ok"]),
        "offline",
        str(availability["offline"]),
        "stale",
        str(availability["stale"]),
    )
    errors = str(last.get("errors_by_kind", {}))
    summary.add_row(
        "hashrate", f"{totals['hashrate_ths'] / 1000:.3f} PH/s", "power", f"{totals['power_kw']:.1f} kW",
        "cycle", f"{last.get('duration_s', 0):.2f} s", "errors", errors,
    )  # fmt: skip
    table = Table("sev", "rule", "miner", "detail", title=f"open alerts ({len(alerts)})", expand=True)
    for alert in sorted(alerts, key=lambda a: (a["severity"], a["opened_at"] or 0))[:15]:
        miner = next((m for m in view["miners"] if m["id"] == alert["miner_id"]), None)
        where = f"{miner['ip']} {miner['model']}" if miner else alert["miner_id"]
        table.add_row(alert["severity"], alert["rule"], where, alert["detail"])
    title = f"{view['site']['name']} - cycle {gateway.poller.totals.cycles}"
    return Group(Panel(summary, title=title), table)


def _plain_line(view: dict[str, Any], cycles: int, alerts: list[dict[str, Any]]) -> str:
    totals = view["totals"]
    availability = totals["by_availability"]
    last = totals["last_cycle"] or {}
    return (
        f"cycle {cycles}: {availability['ok']}/{totals['miners']} ok, {availability['offline']} offline, "
        f"{availability['failing']} failing, {totals['hashrate_ths'] / 1000:.3f} PH/s, "
        f"{totals['power_kw']:.1f} kW, cycle {last.get('duration_s', 0):.2f} s, "
        f"open alerts: {len(alerts)}"
    )


def main(
    options: DemoOptions, profiles: ProfileCatalog, console_factory: Callable[[], Console] = Console
) -> int:
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    asyncio.run(run_demo(options, profiles, console_factory()))
    return 0
