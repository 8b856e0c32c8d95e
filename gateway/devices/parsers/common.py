"""Shared pieces of the pure parsers: value coercion, CGMiner reply shapes, and the parse context.

Parsers are pure: decoded replies in (a `Capture`: command key -> decoded JSON), `Sample` out. No I/O,
no clock: the caller passes the timestamp. That is what lets `hashinsight devices parse` and the tests
run the exact code the poller runs, on captured files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.devices.errors import AuthFailed, ProtocolError, Unsupported
from gateway.devices.model import MinerIdentity, Mode, Sample, Source
from gateway.devices.profiles import MinerProfile, ProfileCatalog

Capture = Mapping[str, Any]

# Plausible sensor window. S9 bmminer reports -83 for a broken sensor; some firmwares 0 or 255/-1 for
# "no sensor". Nothing that runs at these temperatures would still be answering its API.
TEMP_MIN_C = -30.0
TEMP_MAX_C = 150.0

# CGMiner status codes that mean "the firmware refuses us" rather than "the firmware is confused".
_ACCESS_DENIED_CODES = {45}
_INVALID_COMMAND_CODES = {14}


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseContext:
    """What a parser needs besides the replies: who, when, and the model tables."""

    miner_id: str
    ts: int
    profiles: ProfileCatalog | None = None
    model_hint: str | None = None  # from the inventory, or `devices parse --model`

    def profile_for(self, make: str | None, model: str | None) -> MinerProfile | None:
        if self.profiles is None:
            return None
        return self.profiles.match(make, model) or self.profiles.match(make, self.model_hint)


class FamilyParser(Protocol):
    """The pure half of a backend. `command_keys` maps each capture key to the file-name suffix that
    carries it in captured sets (e.g. "stats.cgi" <- "stats.cgi", "web:summary" <- "web_api_v1_summary")."""

    @property
    def command_keys(self) -> Mapping[str, str]: ...

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity: ...

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample: ...


# --- value coercion --------------------------------------------------------------------------------


def number(value: Any) -> float | None:
    """A float from a number or a numeric string ("13883.81", " 42 "); None for anything else.
    Firmwares send numbers as strings at random (S9 `GHS 5s`, Vnish chain rates)."""
    # Exact types first (bool is not int here): this runs hundreds of times per reply (an Avalon's
    # per-chip temperatures), 10,000 replies per poll cycle. float() ignores surrounding whitespace
    # itself, so plain numeric text needs no strip; only a failure falls back to the general path.
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    if kind is str:
        try:
            result = float(value)
        except ValueError:
            try:
                result = float(value.strip().rstrip("%"))
            except ValueError:
                return None
        return result if math.isfinite(result) else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def integer(value: Any) -> int | None:
    result = number(value)
    return int(result) if result is not None else None


def temperature(value: Any) -> float | None:
    """A plausible temperature, or None. 0 means "no sensor" on every CGMiner firmware we have seen:
    a miner's chips are never at exactly 0 C while it answers its API."""
    result = number(value)
    if result is None or result == 0 or not TEMP_MIN_C < result < TEMP_MAX_C:
        return None
    return result


def max_temperature(values: Sequence[Any]) -> float | None:
    temps = [t for t in (temperature(v) for v in values) if t is not None]
    return max(temps) if temps else None


def dash_list(value: Any) -> list[Any]:
    """Antminer packs per-sensor values as '39-37-40-39'. Negative readings would be ambiguous in this
    format, which is why we only ever use it for temperatures (where negatives are nonsense anyway)."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        return [part for part in value.split("-") if part]
    return []


def ghs_to_ths(value: Any) -> float | None:
    result = number(value)
    return result / 1_000 if result is not None else None


def mhs_to_ths(value: Any) -> float | None:
    result = number(value)
    return result / 1_000_000 if result is not None else None


def rate_to_ths(value: Any, unit: Any) -> float | None:
    """Convert by the firmware's stated unit ("GH", "GH/s", "TH/s", "MH/s"); GH/s when unstated."""
    factor = {"h": 1e-12, "kh": 1e-9, "mh": 1e-6, "gh": 1e-3, "th": 1.0, "ph": 1e3}
    if unit is not None and not isinstance(unit, str):
        return None  # a unit we cannot read makes the number meaningless
    key = (unit or "GH").lower().removesuffix("/s").strip()
    result = number(value)
    if result is None or key not in factor:
        return None
    return result * factor[key]


def first_present(mapping: Mapping[str, Any], *keys: str) -> Any:
    """The first key that exists in the mapping (firmwares disagree on spelling and even typos:
    S19 2022 devs has 'Tenperature')."""
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


# --- reply shapes ----------------------------------------------------------------------------------


def status_entry(reply: Any) -> Mapping[str, Any]:
    """The STATUS block, whether a list of one object (CGMiner), an object (Antminer new API / CGI),
    or a bare letter (btminer native replies: `"STATUS":"S"` with Code/Msg beside it)."""
    if not isinstance(reply, Mapping):
        return {}
    status = reply.get("STATUS", reply.get("status"))
    if isinstance(status, list) and status and isinstance(status[0], Mapping):
        return status[0]
    if isinstance(status, Mapping):
        return status
    if isinstance(status, str):
        return {"STATUS": status, "Code": reply.get("Code"), "Msg": reply.get("Msg")}
    return {}


def check_status(reply: Any, command: str, *, host: str | None = None) -> None:
    """Raise the right error for an error reply; return quietly for S/I/W or replies without STATUS."""
    entry = status_entry(reply)
    letter = str(entry.get("STATUS", "S"))
    if letter not in {"E", "F"}:
        return
    code = integer(entry.get("Code"))
    message = f"{command}: firmware error {code}: {entry.get('Msg') or entry.get('msg')}"
    if code in _ACCESS_DENIED_CODES:
        raise AuthFailed(message, host=host)
    if code in _INVALID_COMMAND_CODES:
        raise Unsupported(message, host=host)
    raise ProtocolError(message, host=host)


def section(reply: Any, name: str, command: str | None = None) -> list[Mapping[str, Any]]:
    """The list under `name` (e.g. "SUMMARY"), unwrapping the multi-command form
    `{"summary": [{"STATUS": ..., "SUMMARY": [...]}]}`. Returns [] when absent."""
    if not isinstance(reply, Mapping):
        return []
    if command and command in reply and isinstance(reply[command], list) and reply[command]:
        reply = reply[command][0]
        if not isinstance(reply, Mapping):
            return []
    value = reply.get(name)
    if value is None:
        value = next((v for k, v in reply.items() if k.upper() == name.upper()), None)
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        # `type is dict` first: decoded JSON objects are dicts, and an ABC isinstance costs ten times more.
        return [item for item in value if type(item) is dict or isinstance(item, Mapping)]
    return []


def first_section(reply: Any, name: str, command: str | None = None) -> Mapping[str, Any]:
    entries = section(reply, name, command)
    return entries[0] if entries else {}


def require_mapping(capture: Capture, key: str) -> Mapping[str, Any]:
    """The reply for `key`, which must be a JSON object; ProtocolError names the command otherwise."""
    reply = capture.get(key)
    if not isinstance(reply, Mapping):
        kind = type(reply).__name__ if key in capture else "nothing"
        raise ProtocolError(f"{key}: expected a JSON object, got {kind}")
    return reply


# --- derived values --------------------------------------------------------------------------------


def estimated_power(
    profile: MinerProfile | None, hashrate_ths: float | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """Profile-based watts for firmwares that report none, tagged `estimated`."""
    if profile is None:
        return None, None
    watts = profile.estimate_power_w(hashrate_ths, mode)
    return (round(watts, 1), Source.ESTIMATED) if watts is not None else (None, None)


def expected_hashrate(
    reported_ths: float | None, profile: MinerProfile | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """The firmware's own ideal rate when it reports one (measured), else the profile's (estimated)."""
    if reported_ths:
        return reported_ths, Source.MEASURED
    if profile is not None:
        return profile.mode(mode).hashrate_ths, Source.ESTIMATED
    return None, None


def safe(parse_part: Callable[[], Any], errors: list[str], what: str) -> Any:
    """Run an optional part of a parse; a malformed optional reply costs that part, not the sample."""
    try:
        return parse_part()
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        errors.append(f"{what}: unreadable ({type(err).__name__}: {err})")
        return None
