"""`hashinsight run | status | demo | config check | inventory ...`: the gateway itself."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer

from gateway.cli.common import DataDirOption, data_dir, fail
from gateway.config import ENV_CONFIG, ConfigError, Settings, describe, load_settings
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.store.state import InventoryRow, StateError, list_miners, open_state, upsert_miners

config_app = typer.Typer(help="Validate and show site configuration.", no_args_is_help=True)
inventory_app = typer.Typer(help="The miners this gateway polls.", no_args_is_help=True)
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar=ENV_CONFIG, help="Site configuration (TOML). Env: HASHINSIGHT_CONFIG."
    ),
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as err:
        fail(str(err), 2)


def _state_dir(option: Path | None, settings: Settings | None = None) -> Path:
    return data_dir(option or (settings.data_dir if settings else None))


def run_command(config: ConfigOption = None, data: DataDirOption = None) -> None:
    """Run the gateway daemon: poll every miner in the inventory, store telemetry, meter energy,
    serve the local API (127.0.0.1:8470 by default). SIGTERM or Ctrl-C stops it cleanly, writing
    everything already read. Configuration: `site.toml` plus HASHINSIGHT_SECTION__KEY overrides."""
    from gateway.runtime import Gateway, run_until_stopped

    settings = _settings(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        profiles = load_profiles()
    except ProfileError as err:
        fail(str(err))
    gateway = Gateway(settings, _state_dir(data, settings), profiles=profiles)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, gateway.request_stop)
        await run_until_stopped(gateway)

    try:
        asyncio.run(main())
    except (StateError, OSError) as err:
        fail(str(err))


def status_command(
    api: Annotated[str, typer.Option(help="The gateway's local API.")] = "http://127.0.0.1:8470",
    as_json: Annotated[bool, typer.Option("--json", help="Print the fleet JSON as served.")] = False,
) -> None:
    """Print the fleet summary from a running gateway's local API."""

    async def fetch() -> Any:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{api}/api/fleet") as response,
        ):
            response.raise_for_status()
            return await response.json()

    try:
        view = asyncio.run(fetch())
    except (aiohttp.ClientError, TimeoutError) as err:
        fail(f"no gateway answering at {api} ({err}); is `hashinsight run` running?")
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    totals = view["totals"]
    by = totals["by_availability"]
    last = totals.get("last_cycle") or {}
    typer.echo(f"{view['site']['name']} ({view['site']['id']})")
    typer.echo(
        f"miners {totals['miners']}: "
        + ", ".join(f"{k} {v}" for k, v in by.items() if v)
        + f" | {totals['hashrate_ths'] / 1000:.3f} PH/s | {totals['power_kw']:.1f} kW"
        + (f" | last cycle {last['duration_s']:.2f} s" if last else "")
    )
    for miner in view["miners"]:
        if miner["availability"] != "ok":
            typer.echo(f"  {miner['availability']:8} {miner['ip']:15} {miner['make']} {miner['model']}")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="The site.toml to validate.")],
    show: Annotated[bool, typer.Option(help="Print the effective settings (passwords masked).")] = False,
) -> None:
    """Validate a site configuration file (with HASHINSIGHT_* overrides applied); every bad value
    is named by its key."""
    settings = _settings(file)
    typer.echo(f"{file}: OK")
    if show:
        typer.echo(json.dumps(describe(settings), indent=2))


@inventory_app.command("list")
def inventory_list(
    data: DataDirOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List the miners in the inventory."""
    try:
        conn = open_state(_state_dir(data) / "state.db")
    except StateError as err:
        fail(str(err))
    try:
        rows = list_miners(conn)
    finally:
        conn.close()
    if as_json:
        typer.echo(json.dumps([_row_dict(r) for r in rows], indent=2))
        return
    for row in rows:
        make, model = row.make or "", row.model or ""
        typer.echo(f"{row.ip:15} {row.family:10} {make:10} {model:10} web:{row.web_port} {row.id}")
    typer.echo(f"{len(rows)} miner(s)", err=True)


def _row_dict(row: InventoryRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in InventoryRow.__dataclass_fields__}


@inventory_app.command("import")
def inventory_import(
    file: Annotated[
        Path, typer.Argument(help="JSON list of miners, e.g. written by `simulate --inventory`.")
    ],
    data: DataDirOption = None,
) -> None:
    """Add miners from a JSON file: objects with at least ip and family; optional id, make, model,
    rpc_port, web_port, v3_port, customer_id, rack. Nothing is written unless every row is valid."""
    try:
        raw = json.loads(file.read_text())
    except FileNotFoundError:
        fail(f"{file}: no such file", 2)
    except (OSError, ValueError) as err:
        fail(f"{file}: not a JSON file: {err}")
    if not isinstance(raw, list):
        fail(f"{file}: expected a JSON list of miners")
    rows = []
    known = set(InventoryRow.__dataclass_fields__)
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or "ip" not in item or "family" not in item:
            fail(f"{file}: entry {index}: needs at least 'ip' and 'family'")
        fields = {k: v for k, v in item.items() if k in known and v is not None}
        fields.setdefault("id", str(item.get("mac") or item["ip"]).lower())
        try:
            rows.append(InventoryRow(**fields))
        except TypeError as err:
            fail(f"{file}: entry {index}: {err}")
    try:
        conn = open_state(_state_dir(data) / "state.db")
    except StateError as err:
        fail(str(err))
    try:
        written = upsert_miners(conn, rows, int(time.time()))
    finally:
        conn.close()
    typer.echo(f"imported {written} miner(s)")


def demo_command(
    miners: Annotated[int, typer.Option(min=1, max=2000, help="Simulated miners.")] = 120,
    # Deliberately not HASHINSIGHT_DATA_DIR: a demo must never write into a real gateway's state.
    data: Annotated[
        Path | None, typer.Option("--data-dir", help="Keep the demo's databases here (default: a temp dir).")
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Stop by itself after this many seconds (default: until Ctrl-C)."),
    ] = None,
    interval: Annotated[float, typer.Option(min=2, max=60, help="Poll interval in seconds.")] = 10.0,
) -> None:
    """Run a simulated site (~120 mixed miners, three customers, a few with faults) and a real gateway
    reading it, with a live summary. Embedded defaults only: no configuration, no external services;
    a temporary data directory unless --data-dir. Ctrl-C or SIGTERM stops it cleanly."""
    from gateway.demo import DemoOptions
    from gateway.demo import main as demo_main

    try:
        profiles = load_profiles()
    except ProfileError as err:
        fail(str(err))
    options = DemoOptions(miners=miners, data_dir=data, duration_s=duration, interval_s=interval)
    raise typer.Exit(demo_main(options, profiles))
