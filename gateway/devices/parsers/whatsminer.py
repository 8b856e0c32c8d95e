"""Whatsminer (MicroBT btminer): API v2 on port 4028 here, API v3 (port 4433) in `whatsminer_v3`.

btminer answers cgminer-style `summary`/`edevs`/`devs`/`pools` and its own native commands (`status`,
`get_version`, `get_psu`, `get_miner_info`) whose replies are flat: `"STATUS":"S"` and a `Msg` object.
Decisions, each checked against the captures in tests/fixtures/devices/whatsminer:

* Units: `HS RT` and `MHS *` are MH/s (M31S: HS RT 76690808.44 with `Factory GHS` 75697 -> 76.69 TH/s).
  The real-time rate is `HS RT`, else `MHS 5s` (2019/2020 firmwares have no HS RT); `MHS av` is the
  since-start average. Boards use their `MHS 5s`, the only real-time per-board figure.
* `Factory GHS` (the unit's factory-tested rate) is the measured expected rate. `Target MHS` follows a
  frequency floor the miner runs above (M31S: target 71.5 TH/s while hashing 76.7), so it is not used.
* Power: `Power_RT`, else `Power`, both watts at the PSU, measured. `Power Limit` is the limit;
  `Power Mode` Normal/Low/High is the mode.
* Sleep: the native `status` reply carries `btmineroff` ("true" after `power_off`). The M20S 2021 set has
  `btmineroff: "true"` in a status reply written the same second as a summary hashing 67 TH/s at 3427 W,
  so the flag alone is not believed: the miner is sleeping when the flag says so and the real-time rate
  is absent or zero. A summary that fails while the flag is set is expected (btminer stopped).
* Temperatures: board `Temperature` is the board sensor, `Chip Temp Max` the hottest chip (what trips
  protections), summary `Env Temp` the inlet - kept when plausible even if cold (M31S: 7 C in February).
* Errors: `Error Code N` entries are the active codes (M31S: 110/111/131 are the fan-error range, matching
  its `Fan Speed Out` 0); `Factory Error Code N` are factory-test history and are not reported.
* Old firmware (2019 M20S) has no per-board rates; its `stats` carries per-chip counters: boards come from
  the `SMn` entries (board sensor `temp_1`/`temp_2`, chips with a non-zero nonce count).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError, Unsupported
from gateway.devices.model import (
    BoardReading,
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    Mode,
    Sample,
)
from gateway.devices.parsers import whatsminer_v3
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    first_present,
    first_section,
    ghs_to_ths,
    integer,
    max_temperature,
    mhs_to_ths,
    number,
    safe,
    section,
    temperature,
)
from gateway.devices.parsers.whatsminer_common import (
    MAKE,
    POWER_MODES,
    cgminer_pools,
    check_v2,
    expected_reading,
    fan_readings,
    is_true,
    normalize_model,
    power_reading,
    text,
)

_V2_KEYS = (
    "summary",
    "devs",
    "edevs",
    "pools",
    "get_version",
    "get_psu",
    "status",
    "get_miner_info",
    "stats",
    "devdetails",
)
_ERROR_CODE = re.compile(r"^Error Code (\d+)$")
_OLD_BOARD_ID = re.compile(r"^SM\d+$")


class WhatsminerParser:
    command_keys: Mapping[str, str] = {
        **{key: key for key in _V2_KEYS},
        **{key: key.replace("v3:", "v3_").replace(".", "_") for key in whatsminer_v3.KEYS},
    }

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        if whatsminer_v3.is_v3(capture):
            return whatsminer_v3.identify(capture, ctx)
        identity = _identity(capture, ctx)
        if identity.firmware_version is None and identity.mac is None and identity.model is None:
            raise ProtocolError("no usable get_version, summary, status or devdetails reply to identify")
        return identity

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        if whatsminer_v3.is_v3(capture):
            return whatsminer_v3.parse(capture, ctx)
        return _parse_v2(capture, ctx)


def _parse_v2(capture: Capture, ctx: ParseContext) -> Sample:
    errors: list[str] = []
    status_msg = _native_msg(capture, "status", errors)
    off = is_true(status_msg.get("btmineroff")) or is_true(status_msg.get("mineroff"))
    summary: Mapping[str, Any] = {}
    try:
        summary = _summary(capture)
    except DeviceError as err:
        if not off:
            raise
        errors.append(str(err))  # btminer is stopped: its cgminer API may well refuse

    rate = mhs_to_ths(first_present(summary, "HS RT", "MHS 5s"))
    sleeping = off and not rate
    if rate is None and not sleeping:
        raise ProtocolError("summary: neither 'HS RT' nor 'MHS 5s' present")
    errors.extend(_error_codes(summary))
    if sleeping:
        status = MinerStatus.SLEEPING
    elif rate:
        status = MinerStatus.MINING
    else:
        status = MinerStatus.ERROR if errors else MinerStatus.IDLE
    mode = Mode.SLEEP if sleeping else POWER_MODES.get(str(summary.get("Power Mode", "")).lower())

    identity = _identity(capture, ctx)
    profile = ctx.profile_for(MAKE, identity.model)
    # Chips per board depend on the board revision in the reported model string (M20SV10 vs V30).
    chips = profile.chips_expected(_reported_model(capture, ctx)) if profile else None
    measured = number(summary.get("Power_RT")) or number(summary.get("Power"))
    power_w, power_source = power_reading(measured, profile, rate, mode)
    expected, expected_source = expected_reading(ghs_to_ths(summary.get("Factory GHS")), profile, mode)

    pools = safe(lambda: cgminer_pools(_ok(capture, "pools")), errors, "pools") or ()
    active_pool = next((p for p in pools if p.active), None)
    return Sample(
        miner_id=ctx.miner_id,
        ts=ctx.ts,
        status=status,
        hashrate_ths=rate,
        hashrate_avg_ths=mhs_to_ths(summary.get("MHS av")),
        expected_ths=expected,
        expected_ths_source=expected_source,
        power_w=power_w,
        power_source=power_source,
        power_limit_w=number(summary.get("Power Limit")),
        boards=safe(lambda: _boards(capture, chips, sleeping, errors), errors, "boards") or (),
        fans_rpm=fan_readings(
            [integer(summary.get("Fan Speed In")), integer(summary.get("Fan Speed Out"))], profile
        ),
        inlet_c=temperature(summary.get("Env Temp")),
        accepted=integer(summary.get("Accepted")),
        rejected=integer(summary.get("Rejected")),
        hw_errors=integer(summary.get("Hardware Errors")),
        last_share_ts=active_pool.last_share_ts if active_pool else None,
        pool_url=active_pool.url if active_pool else None,
        pools=pools,
        # `Elapsed` is btminer's run time (resets on restart/wake); `Uptime` is the controller's boot.
        uptime_s=integer(summary.get("Elapsed")),
        mode=mode,
        errors=tuple(errors),
        identity=identity,
    )


def _summary(capture: Capture) -> Mapping[str, Any]:
    reply = capture.get("summary")
    if reply is None:
        raise ProtocolError("summary: missing from the capture")
    if not isinstance(reply, Mapping):
        raise ProtocolError(f"summary: expected a JSON object, got {type(reply).__name__}")
    check_v2(reply, "summary")
    entry = first_section(reply, "SUMMARY")
    if not entry:
        raise ProtocolError("summary: reply has no SUMMARY section")
    return entry


def _ok(capture: Capture, key: str, errors: list[str] | None = None) -> Mapping[str, Any]:
    """An optional reply when it is an object without an error status; else {} (noting why, unless the
    firmware simply does not know the command: `edevs` on 2019 firmware is not a fault)."""
    reply = capture.get(key)
    if not isinstance(reply, Mapping):
        return {}
    try:
        check_v2(reply, key)
    except Unsupported:
        return {}
    except DeviceError as err:
        if errors is not None:
            errors.append(str(err))
        return {}
    return reply


def _native_msg(capture: Capture, key: str, errors: list[str] | None = None) -> Mapping[str, Any]:
    msg = _ok(capture, key, errors).get("Msg")
    return msg if isinstance(msg, Mapping) else {}


def _identity(capture: Capture, ctx: ParseContext) -> MinerIdentity:
    summary = first_section(_ok(capture, "summary"), "SUMMARY")
    version = _native_msg(capture, "get_version")
    status = _native_msg(capture, "status")
    info = _native_msg(capture, "get_miner_info")
    model = normalize_model(_reported_model(capture, ctx))
    api = text(version.get("api_ver")) or _api_from_description(capture)
    profile = ctx.profile_for(MAKE, model)
    return MinerIdentity(
        make=MAKE,
        model=model,
        firmware=FirmwareFamily.WHATSMINER,
        firmware_version=(
            text(version.get("fw_ver"))
            or text(summary.get("Firmware Version"))
            or text(status.get("Firmware Version"))
        ),
        api_version=re.sub(r"^whatsminer\s+v", "", api, flags=re.IGNORECASE) if api else None,
        mac=text(summary.get("MAC")) or text(info.get("mac")),
        serial=text(info.get("minersn")),
        hostname=text(info.get("hostname")),
        profile_key=profile.key if profile else None,
    )


def _reported_model(capture: Capture, ctx: ParseContext) -> str | None:
    """v2 has no model in summary: devdetails `Model` ("M31S+V40") when fetched, else the inventory's."""
    details = first_section(_ok(capture, "devdetails"), "DEVDETAILS")
    return text(details.get("Model")) or text(ctx.model_hint)


def _api_from_description(capture: Capture) -> str | None:
    """Native replies say `"Description": "whatsminer v1.3"`; cgminer-style ones name cgminer instead."""
    for key in ("get_version", "status", "get_psu", "get_miner_info"):
        description = text(_ok(capture, key).get("Description"))
        if description and description.lower().startswith("whatsminer"):
            return description
    return None


def _error_codes(summary: Mapping[str, Any]) -> list[str]:
    codes = sorted(
        (int(match.group(1)), integer(value))
        for key, value in summary.items()
        if (match := _ERROR_CODE.match(key))
    )
    return [f"error code {code}" for _, code in codes if code is not None]


def _boards(
    capture: Capture, expected_chips: int | None, sleeping: bool, errors: list[str]
) -> tuple[BoardReading, ...]:
    failures: list[str] = []
    for key in ("edevs", "devs"):
        reply = _ok(capture, key, failures)
        entries = section(reply, "DEVS") or section(reply, "EDEVS")
        if entries:
            return tuple(
                _board(entry, index, expected_chips, sleeping) for index, entry in enumerate(entries)
            )
    old = [
        e for e in section(_ok(capture, "stats", failures), "STATS") if _OLD_BOARD_ID.match(str(e.get("ID")))
    ]
    if not old:
        errors.extend(failures)  # no board source at all: say why
    return tuple(_old_board(entry, index, expected_chips, sleeping) for index, entry in enumerate(old))


def _board(entry: Mapping[str, Any], index: int, expected_chips: int | None, sleeping: bool) -> BoardReading:
    slot = integer(first_present(entry, "Slot", "ASC", "ID"))
    return BoardReading(
        slot=index if slot is None else slot,
        hashrate_ths=mhs_to_ths(entry.get("MHS 5s")),
        temp_chip_c=temperature(entry.get("Chip Temp Max")),
        temp_board_c=temperature(entry.get("Temperature")),
        chips_ok=integer(entry.get("Effective Chips")),
        chips_expected=expected_chips,
        hw_errors=integer(entry.get("Hardware Errors")),
        active=not sleeping and entry.get("Enabled", "Y") != "N",
        serial=text(entry.get("PCB SN")),
    )


def _old_board(
    entry: Mapping[str, Any], index: int, expected_chips: int | None, sleeping: bool
) -> BoardReading:
    """2019 firmware `stats` entry `SMn`: `chip_nonce_count_<i>` per chip; a chip that never returned a
    nonce is not working. `chip_num` is the configured count, used when the profile has none."""
    counts = [integer(v) for k, v in entry.items() if k.startswith("chip_nonce_count_")]
    slot = integer(entry.get("slot"))
    return BoardReading(
        slot=index if slot is None else slot,
        temp_board_c=max_temperature([entry.get("temp_1"), entry.get("temp_2")]),
        chips_ok=sum(1 for count in counts if count) if counts else None,
        chips_expected=expected_chips or integer(entry.get("chip_num")),
        active=not sleeping,
    )


PARSER = WhatsminerParser()
