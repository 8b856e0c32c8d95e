"""`hashinsight devices ...` and `hashinsight profiles ...`: captured replies and firmware profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import fail as _fail
from gateway.devices import capture_files
from gateway.devices.errors import DeviceError
from gateway.devices.model import FirmwareFamily, Mode
from gateway.devices.parsers import PARSED_FAMILIES
from gateway.devices.profiles import ProfileError, default_profiles_dir, load_profiles

devices_app = typer.Typer(
    help="Read, identify and debug miners and their captured replies.", no_args_is_help=True
)
profiles_app = typer.Typer(help="Inspect and validate firmware profiles.", no_args_is_help=True)

ParsedFamily = typer.Option(
    ...,
    "--family",
    "-f",
    help="Firmware family that produced the files: " + ", ".join(f.value for f in PARSED_FAMILIES) + ".",
    case_sensitive=False,
)


@devices_app.command("parse")
def devices_parse(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Captured replies, one per command. Named like the captures (s19_stats.json, "
            "s21_stats.cgi.json, m31s_edevs.json ...) or given as KEY=FILE (stats=/tmp/reply.txt).",
            show_default=False,
        ),
    ],
    family: Annotated[str, ParsedFamily],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model to assume if the replies do not name it ('S19 Pro')."),
    ] = None,
    miner_id: Annotated[str, typer.Option(help="Miner id to put in the sample.")] = "capture",
    ts: Annotated[
        int | None, typer.Option(help="Sample timestamp (UTC epoch seconds); default: now.")
    ] = None,
) -> None:
    """Parse captured miner replies into one Sample and print it as JSON.

    This is exactly the parser the poller runs. Use it to check what the gateway makes of a strange
    miner's output: capture its replies (`echo '{"command":"stats"}' | nc MINER 4028 > x_stats.json`)
    and run e.g. `hashinsight devices parse -f antminer x_stats.json x_summary.json`.
    Repairs applied to invalid firmware JSON are listed on stderr.
    """
    try:
        fam = FirmwareFamily(family.lower())
    except ValueError:
        _fail(f"unknown family {family!r}; choose one of: {', '.join(f.value for f in PARSED_FAMILIES)}", 2)
    try:
        profiles = load_profiles()
    except ProfileError as err:
        _fail(str(err))
    try:
        result = capture_files.parse_files(
            fam, [capture_files.split_argument(arg) for arg in files], model, miner_id, ts, profiles
        )
    except capture_files.CaptureFileError as err:
        _fail(str(err), 2 if err.usage else 1)
    except DeviceError as err:
        _fail(f"{type(err).__name__}: {err}")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(json.dumps(result.sample.to_dict(), indent=2))


@profiles_app.command("check")
def profiles_check(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Directory of *.toml profiles; default: the shipped firmware_profiles/."),
    ] = None,
) -> None:
    """Validate every firmware profile in a directory; the first bad file is named with its field."""
    try:
        catalog = load_profiles(directory)
    except ProfileError as err:
        _fail(str(err))
    typer.echo(f"{len(catalog)} profiles OK in {directory or default_profiles_dir()}")


@profiles_app.command("list")
def profiles_list() -> None:
    """List the shipped firmware profiles with their nominal figures."""
    try:
        catalog = load_profiles()
    except ProfileError as err:
        _fail(str(err))
    for profile in sorted(catalog, key=lambda p: p.key):
        normal = profile.mode(Mode.NORMAL)
        typer.echo(
            f"{profile.key:24} {profile.make:10} {profile.model:10} "
            f"{profile.nominal_ths:7.1f} TH/s {normal.power_w:7.0f} W  "
            f"{profile.hashboards}x{profile.chips_per_board} chips  {'/'.join(profile.firmware)}"
        )
