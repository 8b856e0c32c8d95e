"""`hashinsight scan`: find and identify miners on the network, optionally register them."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gateway.cli.common import DataDirOption, data_dir, fail
from gateway.devices.discovery import Found, RangeError, ScanSettings, expand_ranges, scan
from gateway.devices.profiles import ProfileError, load_profiles
from gateway.store.state import InventoryRow, StateError, open_state, upsert_miners


def scan_command(
    ranges: Annotated[
        list[str],
        typer.Argument(
            help="Addresses to scan: CIDR (10.0.0.0/24), a.b.c.d-e, a.b.c.d-w.x.y.z or one address."
        ),
    ],
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Hosts probed at once.")] = 64,
    timeout: Annotated[
        float,
        typer.Option(min=0.1, max=120, help="Hard deadline per host, in seconds (all probes included)."),
    ] = 5.0,
    web_port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the miners' web APIs.")] = 80,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    register: Annotated[
        bool, typer.Option(help="Add (or update) the miners found in the inventory.")
    ] = False,
    data: DataDirOption = None,
) -> None:
    """Find miners: probe each address's CGMiner RPC (4028) and, for Whatsminers, API v3 (4433);
    identify make, model, firmware, MAC and serial. A scan of N addresses ends within
    (N / concurrency + 1) x timeout however many hosts hang or answer garbage.
    Example: `hashinsight scan 10.20.0.0/22 --concurrency 256 --timeout 3 --register`."""
    try:
        hosts = expand_ranges(ranges)
    except RangeError as err:
        fail(str(err), 2)
    try:
        profiles = load_profiles()
    except ProfileError as err:
        fail(str(err))
    settings = ScanSettings(timeout_s=timeout, concurrency=concurrency, web_port=web_port)
    err_console = Console(stderr=True)
    started = time.monotonic()
    if err_console.is_terminal:
        with Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[found]} found"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress:
            task = progress.add_task("scan", total=len(hosts), found=0)
            count = 0

            def advance(done: int, total: int, result: Found | None) -> None:
                nonlocal count
                count += result is not None
                progress.update(task, completed=done, found=count)

            found = asyncio.run(scan(hosts, settings, profiles, advance))
    else:
        found = asyncio.run(scan(hosts, settings, profiles))
    elapsed = time.monotonic() - started
    if as_json:
        typer.echo(json.dumps([_row(f) for f in found], indent=2))
    else:
        _print_table(found)
    typer.echo(f"{len(found)} miner(s) in {len(hosts)} address(es), {elapsed:.1f}s", err=True)
    if register and found:
        try:
            conn = open_state(data_dir(data) / "state.db")
        except StateError as err:
            fail(str(err))
        try:
            written = upsert_miners(conn, (_inventory_row(f) for f in found), int(time.time()))
        finally:
            conn.close()
        typer.echo(f"registered {written} miner(s) in the inventory", err=True)


def _row(found: Found) -> dict[str, object]:
    identity = found.identity
    return {
        "ip": found.ip,
        "make": identity.make,
        "model": identity.model,
        "firmware": found.family.value,
        "firmware_version": identity.firmware_version,
        "mac": identity.mac,
        "serial": identity.serial,
        "hostname": identity.hostname,
        "profile": identity.profile_key,
    }


def _inventory_row(found: Found) -> InventoryRow:
    identity = found.identity
    return InventoryRow(
        id=(identity.mac or found.ip).lower(),
        ip=found.ip,
        family=found.family.value,
        make=identity.make,
        model=identity.model,
        profile_key=identity.profile_key,
        firmware_version=identity.firmware_version,
        mac=identity.mac,
        serial=identity.serial,
        hostname=identity.hostname,
        rpc_port=found.endpoint.rpc_port,
        web_port=found.endpoint.web_port,
        v3_port=found.endpoint.v3_port,
    )


def _print_table(found: list[Found]) -> None:
    table = Table("IP", "Make", "Model", "Firmware", "Version", "MAC", "Serial")
    for f in found:
        row = _row(f)
        table.add_row(
            *(
                str(row[k] or "")
                for k in ("ip", "make", "model", "firmware", "firmware_version", "mac", "serial")
            )
        )
    Console().print(table)
