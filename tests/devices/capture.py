"""Load captured firmware replies from tests/fixtures/devices (copied from the team's shared folder,
provenance in its README). Files are decoded with the production repair step, exactly as on the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.devices.jsonrepair import loads
from gateway.devices.parsers.common import ParseContext
from gateway.devices.profiles import load_profiles

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "devices"
PROFILES = load_profiles(Path(__file__).resolve().parents[2] / "firmware_profiles")
TS = 1_700_000_000


def reply(relative: str) -> Any:
    """One decoded capture, e.g. reply("antminer/s19_sleeping_stats.json")."""
    return loads((FIXTURES / relative).read_bytes())


def capture(family: str, **files: str) -> dict[str, Any]:
    """A capture set, command key -> decoded reply: capture("antminer", stats="s19_sleeping_stats.json")."""
    return {key: reply(f"{family}/{name}") for key, name in files.items()}


def ctx(model_hint: str | None = None, miner_id: str = "m1") -> ParseContext:
    return ParseContext(miner_id=miner_id, ts=TS, profiles=PROFILES, model_hint=model_hint)
