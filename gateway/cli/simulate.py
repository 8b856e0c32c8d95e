"""`hashinsight simulate`: serve a fleet of virtual miners; `simulate fault|clear|list` drive it."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import typer

from gateway.cli.common import fail
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.oslimits import raise_open_files_limit
from gateway.simulator.faults import FaultKind
from gateway.simulator.fleet import DEFAULT_MIX, MixError
from gateway.simulator.run import DEFAULT_CONTROL_PORT, Simulator, SimulatorConfig

simulate_app = typer.Typer(invoke_without_command=True)
DEFAULT_CONTROL_URL = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"
ControlOption = Annotated[str, typer.Option("--control", help="URL of the simulator's control API.")]


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    miners: Annotated[int, typer.Option("--miners", "-n", min=1, max=60_000, help="How many miners.")] = 20,
    mix: Annotated[
        str,
        typer.Option(
            help="Model mix, MODEL[@FIRMWARE]=WEIGHT,... e.g. s19=0.5,m30s+=0.3,s21pro@braiins=0.2."
        ),
    ] = DEFAULT_MIX,
    seed: Annotated[int, typer.Option(help="Same seed, same fleet (models, addresses, identities).")] = 1,
    first_address: Annotated[
        str, typer.Option(help="First loopback address; miners take consecutive ones.")
    ] = ("127.10.0.1"),
    web_port: Annotated[
        int,
        typer.Option(
            min=1, max=65535, help="Web API port (80 needs root; 8080 is used when it cannot bind)."
        ),
    ] = 80,
    control_port: Annotated[int, typer.Option(min=0, max=65535, help="Control API port on 127.0.0.1.")] = (
        DEFAULT_CONTROL_PORT
    ),
    inventory: Annotated[
        Path | None, typer.Option(help="Write the fleet (addresses, firmware, ports) to this JSON file.")
    ] = None,
) -> None:
    """Serve MINERS virtual miners on consecutive loopback addresses, on the real ports (CGMiner RPC
    4028, web 80, Whatsminer API v3 4433), until Ctrl-C. Replies follow real firmware captures, with
    physics (hashrate, power, temperatures, shares) and faults you can inject at run time:
    `hashinsight simulate fault 127.10.0.3 overheat extra_c=35`."""
    if ctx.invoked_subcommand is not None:
        return
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    _, soft, _ = raise_open_files_limit()  # each miner holds two or three listening sockets
    if soft < miners * 3 + 64:
        fail(f"{miners} miners need about {miners * 3} open files; this process may open {soft}", 2)
    try:
        config = SimulatorConfig(
            miners=miners,
            mix=mix,
            seed=seed,
            first_address=first_address,
            web_port=web_port,
            control_port=control_port,
            inventory_path=inventory,
        )
        simulator = Simulator(config, load_profiles())
    except (MixError, ProfileError, ValueError) as err:
        fail(str(err), 2)
    try:
        asyncio.run(_serve(simulator))
    except OSError as err:
        if err.filename:
            fail(f"cannot write {err.filename}: {err.strerror or err}")
        fail(f"cannot listen: {err.strerror or err} (is another simulator running on these addresses?)")


async def _serve(simulator: Simulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await simulator.start()
    try:
        miners = simulator.miners
        families = sorted({m.identity.family.value for m in miners})
        typer.echo(
            f"serving {len(miners)} miners on {miners[0].ip} - {miners[-1].ip} "
            f"(RPC 4028, web {simulator.servers.web_port}, Whatsminer v3 4433; {', '.join(families)})"
        )
        typer.echo(f"control API: {simulator.control_url}  (hashinsight simulate list / fault / clear)")
        if simulator.config.inventory_path:
            typer.echo(f"inventory written to {simulator.config.inventory_path}")
        await stop.wait()
    finally:
        await simulator.stop()


async def _call(method: str, url: str, body: Any = None) -> Any:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, url, json=body) as response,
        ):
            text = await response.text()
            if response.status >= 400:
                fail(text.strip() or f"HTTP {response.status}", 1)
            return json.loads(text)
    except (aiohttp.ClientError, TimeoutError) as err:
        fail(f"cannot reach the simulator's control API at {url}: {err}")


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"parameter {pair!r} must be KEY=VALUE", 2)
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


@simulate_app.command("fault")
def fault(
    ip: Annotated[str, typer.Argument(help="The miner's address.")],
    kind: Annotated[str, typer.Argument(help="One of: " + ", ".join(k.value for k in FaultKind) + ".")],
    params: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE parameters, e.g. extra_c=35.")] = None,
    control: ControlOption = DEFAULT_CONTROL_URL,
) -> None:
    """Inject (or update) a fault in a running simulated miner."""
    result = asyncio.run(
        _call("POST", f"{control}/miners/{ip}/faults", {"kind": kind, **_parse_params(params or [])})
    )
    typer.echo(json.dumps(result["faults"]))


@simulate_app.command("quirk")
def quirk(
    ip: Annotated[str, typer.Argument(help="The miner's address.")],
    settings: Annotated[
        list[str],
        typer.Argument(
            help="NAME=true|false: concatenated_objects (S9 '}{'), numbers_as_strings, "
            "ignores_mode_write (M000 OK but nothing changes), no_nul."
        ),
    ],
    control: ControlOption = DEFAULT_CONTROL_URL,
) -> None:
    """Switch real-firmware quirks on or off for one simulated miner."""
    body = _parse_params(settings)
    result = asyncio.run(_call("POST", f"{control}/miners/{ip}/quirks", body))
    typer.echo(json.dumps(result["quirks"]))


@simulate_app.command("clear")
def clear(
    ip: Annotated[str, typer.Argument(help="The miner's address.")],
    kind: Annotated[str | None, typer.Argument(help="The fault to clear; all when omitted.")] = None,
    control: ControlOption = DEFAULT_CONTROL_URL,
) -> None:
    """Clear one fault, or all faults, of a simulated miner."""
    url = f"{control}/miners/{ip}/faults" + (f"/{kind}" if kind else "")
    result = asyncio.run(_call("DELETE", url))
    typer.echo(json.dumps(result["faults"]))


@simulate_app.command("list")
def list_miners(control: ControlOption = DEFAULT_CONTROL_URL) -> None:
    """List the simulated miners with their faults."""
    for miner in asyncio.run(_call("GET", f"{control}/miners")):
        faults = ",".join(f["kind"] for f in miner["faults"]) or "-"
        typer.echo(
            f"{miner['ip']:15} {miner['firmware']:10} {miner['make']} {miner['model']:10} faults: {faults}"
        )
