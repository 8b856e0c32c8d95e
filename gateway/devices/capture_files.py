"""Turn captured reply files into a `Sample`: the library behind `hashinsight devices parse`.

A capture set is one file per command, named the way technicians and our fixtures name them
(`<anything>_<command>.json`). The command is recognised from the file name's ending against the
family parser's own table, longest match first, so `s21_stats.cgi.json` is the CGI stats and not
the RPC `stats`. Files are decoded with the same repair step the poller uses, and each repair is
reported so the technician sees what the firmware got wrong.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gateway.devices.driver import run_parser
from gateway.devices.errors import DeviceError
from gateway.devices.jsonrepair import JsonRepairError, RepairReport, loads
from gateway.devices.model import FirmwareFamily, Sample
from gateway.devices.parsers import parser_for
from gateway.devices.parsers.common import ParseContext
from gateway.devices.profiles import ProfileCatalog

MAX_CAPTURE_BYTES = 2 * 1024 * 1024  # the RPC client's own cap: a bigger file was never a reply


class CaptureFileError(Exception):
    """A capture file cannot be used. `usage` marks mistakes in the command line itself."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True, slots=True)
class ParseResult:
    sample: Sample
    notes: tuple[str, ...]


def split_argument(argument: str) -> tuple[str | None, Path]:
    """`KEY=FILE` -> (KEY, FILE); a plain path -> (None, path)."""
    key, sep, rest = argument.partition("=")
    if sep and key and "/" not in key and not Path(argument).exists():
        return key, Path(rest)
    return None, Path(argument)


def command_for_file(path: Path, command_keys: dict[str, str]) -> str | None:
    """The capture key whose file-name suffix ends the file's stem, preferring the longest suffix."""
    stem = path.name.removesuffix(".json").removesuffix(".txt")
    matches = [
        (len(suffix), key)
        for key, suffix in command_keys.items()
        if stem == suffix or stem.endswith("_" + suffix)
    ]
    return max(matches)[1] if matches else None


def read_reply(path: Path, report: RepairReport) -> Any:
    try:
        size = path.stat().st_size
        if size > MAX_CAPTURE_BYTES:
            raise CaptureFileError(f"{path}: {size} bytes is larger than any miner reply we accept")
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaptureFileError(f"{path}: no such file", usage=True) from None
    except IsADirectoryError:
        raise CaptureFileError(f"{path}: is a directory, expected a reply file", usage=True) from None
    except OSError as err:
        raise CaptureFileError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        return loads(data, report)
    except JsonRepairError as err:
        raise CaptureFileError(f"{path}: not a readable miner reply: {err}") from err


def parse_files(
    family: FirmwareFamily,
    files: Sequence[tuple[str | None, Path]],
    model: str | None,
    miner_id: str,
    ts: int | None,
    profiles: ProfileCatalog | None,
) -> ParseResult:
    parser = parser_for(family)
    keys = dict(parser.command_keys)
    capture: dict[str, Any] = {}
    notes: list[str] = []
    for explicit_key, path in files:
        if path.is_dir():
            raise CaptureFileError(f"{path}: is a directory, expected a reply file", usage=True)
        if not path.exists():
            raise CaptureFileError(f"{path}: no such file", usage=True)
        key = explicit_key or command_for_file(path, keys)
        if key is None:
            known = ", ".join(sorted(keys))
            raise CaptureFileError(
                f"{path}: cannot tell which command this file holds; name it <x>_<command>.json "
                f"or pass KEY={path} (keys for {family.value}: {known})",
                usage=True,
            )
        if key not in keys:
            raise CaptureFileError(f"unknown key {key!r} for {family.value}", usage=True)
        if key in capture:
            raise CaptureFileError(f"{path}: a second file for {key!r}", usage=True)
        report = RepairReport()
        capture[key] = read_reply(path, report)
        if report.fixes:
            notes.append(f"{path.name}: repaired: {', '.join(report.fixes)}")
    ctx = ParseContext(
        miner_id=miner_id,
        ts=int(time.time()) if ts is None else ts,
        profiles=profiles,
        model_hint=model,
    )
    sample = run_parser(parser.parse, capture, ctx, host=None)
    if sample.identity is None:
        try:
            sample = replace(sample, identity=run_parser(parser.identify, capture, ctx, host=None))
        except DeviceError as err:
            notes.append(f"identity not readable from these files: {err}")
    return ParseResult(sample=sample, notes=tuple(notes))
