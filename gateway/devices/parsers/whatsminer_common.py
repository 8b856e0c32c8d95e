"""What btminer's API v2 and API v3 parsers share: model names, fan rules, and the error-code tables."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.devices.errors import AuthFailed, DeviceError, ProtocolError, Unsupported
from gateway.devices.model import Mode, PoolReading, Source
from gateway.devices.parsers.common import estimated_power, expected_hashrate, integer, section, status_entry
from gateway.devices.profiles import MinerProfile

MAKE = "Whatsminer"

# btminer API v2 codes (Whatsminer API V2.0.x doc): 14 invalid command; 45 permission denied; 135 check
# token error; 136 token over max times. Everything else that comes with STATUS E (23 invalid JSON,
# 24 missing 'command', 132 command error, 137 base64 decode error) is a reply we cannot use.
_V2_ERRORS: dict[int, type[DeviceError]] = {14: Unsupported, 45: AuthFailed, 135: AuthFailed, 136: AuthFailed}
# API v3 (apidoc.whatsminer.com, "code details"): 0 success, -1 fail, -2 invalid command, -3 invalid json
# item, -4 no permission, -5 out of memory.
_V3_ERRORS: dict[int, type[DeviceError]] = {-2: Unsupported, -4: AuthFailed, **_V2_ERRORS}

POWER_MODES = {"normal": Mode.NORMAL, "low": Mode.LOW, "high": Mode.HIGH}


def normalize_model(name: str | None) -> str | None:
    """'M60S_VK40' -> 'M60S', 'M31S+V40' -> 'M31S+', 'M20SV10' -> 'M20S', 'WhatsMiner M30S++_VH70' ->
    'M30S++'. The suffix is the hashboard revision (chip bin / board variant); the model's nominal
    figures, and so its profile, do not depend on it."""
    if not name or not name.strip():
        return None
    value = re.sub(r"^whats\s*miner\s*", "", name.strip(), flags=re.IGNORECASE).upper()
    value = value.replace("PLUS", "+")
    return re.sub(r"_?V[A-Z]{0,2}\d+$", "", value) or None


def fan_readings(readings: Sequence[int | None], profile: MinerProfile | None) -> tuple[int, ...]:
    """btminer always prints `Fan Speed In` and `Fan Speed Out`. With a profile, the first `fans` readings
    are kept, zeros included: a 0 on a fan the model has is a stopped fan, which must reach the alert
    rules. Without a profile a 0 is ambiguous (no tach on that position) and is dropped."""
    if profile is not None:
        return tuple(rpm for rpm in readings[: profile.fans] if rpm is not None)
    return tuple(rpm for rpm in readings if rpm)


def check_v2(reply: Any, command: str) -> None:
    """Raise the error-tree class for a btminer v2 error reply (cgminer-style or native shape)."""
    entry = status_entry(reply)
    if str(entry.get("STATUS", "S")) not in {"E", "F"}:
        return
    code = integer(entry.get("Code"))
    error = _V2_ERRORS.get(code, ProtocolError) if code is not None else ProtocolError
    raise error(f"{command}: btminer error {code}: {entry.get('Msg') or entry.get('msg')}")


def check_v3(reply: Any, command: str) -> Mapping[str, Any]:
    """The `msg` object of a successful v3 reply; the error-tree class for `code` != 0."""
    if not isinstance(reply, Mapping):
        raise ProtocolError(f"{command}: expected a JSON object, got {type(reply).__name__}")
    code = integer(reply.get("code"))
    if code is None:
        raise ProtocolError(f"{command}: reply has no 'code'")
    if code != 0:
        error = _V3_ERRORS.get(code, ProtocolError)
        raise error(f"{command}: whatsminer API v3 error {code}: {reply.get('msg')}")
    msg = reply.get("msg")
    if not isinstance(msg, Mapping):
        raise ProtocolError(f"{command}: 'msg' is {type(msg).__name__}, expected an object")
    return msg


def check_v3_write(reply: Any, command: str) -> None:
    """A `set.*` reply: `{"code": 0, "msg": "ok", ...}` on success (msg is a word, not an object);
    the error-tree class for any other code (-4 "no permission" is a wrong token/password)."""
    if not isinstance(reply, Mapping):
        raise ProtocolError(f"{command}: expected a JSON object, got {type(reply).__name__}")
    code = integer(reply.get("code"))
    if code is None:
        raise ProtocolError(f"{command}: reply has no 'code'")
    if code != 0:
        error = _V3_ERRORS.get(code, ProtocolError)
        raise error(f"{command}: whatsminer API v3 error {code}: {reply.get('msg')}")


def text(value: Any) -> str | None:
    """A stripped string, None when empty. btminer quotes some values: "'20210322.22.REL'"."""
    if value is None:
        return None
    result = str(value).strip().strip("'\"").strip()
    return result or None


def is_true(value: Any) -> bool:
    """btminer spells booleans as strings ("true"/"false"); accept real booleans too."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def cgminer_pools(reply: Mapping[str, Any]) -> tuple[PoolReading, ...]:
    """POOLS of a cgminer-style `pools` reply. `Stratum Active` marks the pool being hashed on;
    `Last Share Time` 0 means "never" (backup pools), so it becomes None."""
    pools = []
    for entry in section(reply, "POOLS"):
        url = text(entry.get("URL"))
        if not url:
            continue
        pools.append(
            PoolReading(
                url=url,
                user=text(entry.get("User")),
                status=text(entry.get("Status")),
                active=entry.get("Stratum Active") is True,
                accepted=integer(entry.get("Accepted")),
                rejected=integer(entry.get("Rejected")),
                last_share_ts=integer(entry.get("Last Share Time")) or None,
            )
        )
    return tuple(pools)


def power_reading(
    measured: float | None, profile: MinerProfile | None, rate: float | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """The firmware's watts when it reports any (> 0), else the profile's estimate. A sleeping btminer
    reports no or zero watts although the controller still draws some: the profile's sleep figure."""
    if measured:
        return measured, Source.MEASURED
    return estimated_power(profile, rate, mode)


def expected_reading(
    factory_ths: float | None, profile: MinerProfile | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """The rated capacity, asleep too (as the Antminer backend reports it): the rules read `status`
    first, and curtailment needs to know what a sleeping miner would give back when woken."""
    return expected_hashrate(factory_ths, profile, None if mode is Mode.SLEEP else mode)
