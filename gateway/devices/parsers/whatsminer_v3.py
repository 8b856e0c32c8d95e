"""Whatsminer API v3 replies (firmware from mid-2024; port 4433; `{"code","when","msg","desc"}`).

Field names come from the public API doc (apidoc.whatsminer.com, API 3.0.x) and the one v3 capture we
have (M60S_VK40 `get.device.info`). Rates are TH/s, power W. `get.miner.status` is captured per section
("v3:get.miner.status.summary", ".edevs", ".pools"), each as a full reply whose `msg` holds that section.

* Sleep: `get.device.info` `miner.working` is "false" once the mining service is stopped
  (`set.miner.service stop`, the v3 sleep). As on v2, a zero/absent real-time rate must agree.
* Boards: from `edevs` when fetched; otherwise `summary.board-temperature` (one per board) with the
  device info's `pcbsnN` serials. `detect-hash-rate` ("61434:53890:65727", GH/s per board, colon-separated,
  0 for an empty slot) is the firmware's own per-board calibration result: the board's expected rate.
* Errors: `get.device.info` `error-code` is a list of `{"<code>": "<time>", "reason": "..."}`.
* No power mode is read: v3 moved it to `get.miner.setting`, which a poll does not fetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError
from gateway.devices.model import (
    BoardReading,
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    Mode,
    PoolReading,
    Sample,
)
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    first_present,
    ghs_to_ths,
    integer,
    number,
    safe,
    temperature,
)
from gateway.devices.parsers.whatsminer_common import (
    MAKE,
    check_v3,
    expected_reading,
    fan_readings,
    is_true,
    normalize_model,
    power_reading,
    text,
)
from gateway.devices.profiles import MinerProfile

INFO = "v3:get.device.info"
SUMMARY = "v3:get.miner.status.summary"
EDEVS = "v3:get.miner.status.edevs"
POOLS = "v3:get.miner.status.pools"
KEYS = (INFO, SUMMARY, EDEVS, POOLS)


def is_v3(capture: Capture) -> bool:
    return any(key in capture for key in KEYS)


def identify(capture: Capture, ctx: ParseContext) -> MinerIdentity:
    if INFO not in capture:
        raise ProtocolError(f"{INFO}: missing from the capture (the v3 identity comes from it)")
    return _identity(check_v3(capture[INFO], INFO), ctx)


def parse(capture: Capture, ctx: ParseContext) -> Sample:
    errors: list[str] = []
    info: Mapping[str, Any] = {}
    if INFO in capture:
        try:
            info = check_v3(capture[INFO], INFO)
        except DeviceError as err:
            errors.append(str(err))
    miner = _object(info, "miner")
    off = "working" in miner and not is_true(miner.get("working"))
    summary: Mapping[str, Any] = {}
    try:
        summary = _object(_section(capture, SUMMARY), "summary")
        if not summary:
            raise ProtocolError(f"{SUMMARY}: reply has no 'summary' object")
    except DeviceError as err:
        if not off:
            raise
        errors.append(str(err))

    rate = number(summary.get("hash-realtime"))
    sleeping = off and not rate
    if rate is None and not sleeping:
        raise ProtocolError(f"{SUMMARY}: no 'hash-realtime'")
    errors.extend(_error_codes(info))
    if sleeping:
        status = MinerStatus.SLEEPING
    elif rate:
        status = MinerStatus.MINING
    else:
        status = MinerStatus.ERROR if errors else MinerStatus.IDLE
    mode = Mode.SLEEP if sleeping else None

    identity = _identity(info, ctx)
    profile = ctx.profile_for(MAKE, identity.model)
    # `power.pin` (device info; the doc calls it the PSU's output power) only when the summary has none.
    measured = number(summary.get("power-realtime")) or number(_object(info, "power").get("pin"))
    power_w, power_source = power_reading(measured, profile, rate, mode)
    expected, expected_source = expected_reading(number(summary.get("factory-hash")), profile, mode)

    pools = safe(lambda: _pools(capture), errors, "pools") or ()
    active_pool = next((p for p in pools if p.active), None)
    return Sample(
        miner_id=ctx.miner_id,
        ts=ctx.ts,
        status=status,
        hashrate_ths=rate,
        hashrate_avg_ths=number(summary.get("hash-average")),
        expected_ths=expected,
        expected_ths_source=expected_source,
        power_w=power_w,
        power_source=power_source,
        power_limit_w=number(summary.get("power-limit")) or number(miner.get("power-limit-set")),
        boards=safe(lambda: _boards(capture, summary, miner, profile, sleeping), errors, "boards") or (),
        fans_rpm=fan_readings(
            [integer(summary.get("fan-speed-in")), integer(summary.get("fan-speed-out"))], profile
        ),
        inlet_c=temperature(summary.get("environment-temperature")),
        last_share_ts=active_pool.last_share_ts if active_pool else None,
        pool_url=active_pool.url if active_pool else None,
        pools=pools,
        uptime_s=integer(summary.get("elapsed")),
        mode=mode,
        errors=tuple(errors),
        identity=identity,
    )


def _identity(info: Mapping[str, Any], ctx: ParseContext) -> MinerIdentity:
    miner, system, network = _object(info, "miner"), _object(info, "system"), _object(info, "network")
    model = normalize_model(text(miner.get("type"))) or normalize_model(ctx.model_hint)
    profile = ctx.profile_for(MAKE, model)
    return MinerIdentity(
        make=MAKE,
        model=model,
        firmware=FirmwareFamily.WHATSMINER,
        firmware_version=text(system.get("fwversion")),
        api_version=text(system.get("api")),
        mac=text(network.get("mac")),
        serial=text(miner.get("miner-sn")),
        hostname=text(network.get("hostname")),
        profile_key=profile.key if profile else None,
    )


def _section(capture: Capture, key: str) -> Mapping[str, Any]:
    if key not in capture:
        raise ProtocolError(f"{key}: missing from the capture")
    return check_v3(capture[key], key)


def _object(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(capture: Capture, key: str, name: str) -> list[Mapping[str, Any]]:
    if key not in capture:
        return []
    value = check_v3(capture[key], key).get(name)
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _error_codes(info: Mapping[str, Any]) -> list[str]:
    found = []
    entries = info.get("error-code")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        reason = text(entry.get("reason"))
        for code in (key for key in entry if key != "reason"):
            found.append(f"error code {code}: {reason}" if reason else f"error code {code}")
    return found


def _boards(
    capture: Capture,
    summary: Mapping[str, Any],
    miner: Mapping[str, Any],
    profile: MinerProfile | None,
    sleeping: bool,
) -> tuple[BoardReading, ...]:
    edevs = _list(capture, EDEVS, "edevs")
    temps = summary.get("board-temperature")
    board_temps = temps if isinstance(temps, list) else []
    detected = [number(part) for part in str(miner.get("detect-hash-rate") or "").split(":") if part]
    count = len(edevs) or len(board_temps) or integer(miner.get("board-num")) or 0
    boards = []
    for index in range(count):
        entry = edevs[index] if index < len(edevs) else {}
        slot = integer(first_present(entry, "id", "slot", "index"))
        board_temp = first_present(entry, "board-temperature", "temperature")
        if board_temp is None and index < len(board_temps):
            board_temp = board_temps[index]
        factory = number(entry.get("factory-hash"))
        if factory is None and index < len(detected):
            factory = ghs_to_ths(detected[index]) or None
        boards.append(
            BoardReading(
                slot=index if slot is None else slot,
                hashrate_ths=number(first_present(entry, "hash-realtime", "hash-1min", "hash-average")),
                expected_ths=factory,
                temp_chip_c=temperature(entry.get("chip-temp-max")),
                temp_board_c=temperature(board_temp),
                chips_ok=integer(entry.get("effective-chips")),
                chips_expected=profile.chips_expected(text(miner.get("type"))) if profile else None,
                active=not sleeping,
                serial=text(miner.get(f"pcbsn{index}")),
            )
        )
    return tuple(boards)


def _pools(capture: Capture) -> tuple[PoolReading, ...]:
    pools = []
    for entry in _list(capture, POOLS, "pools"):
        url = text(entry.get("url"))
        if url:
            pools.append(
                PoolReading(
                    url=url,
                    user=text(entry.get("account")),
                    status=text(entry.get("status")),
                    active=is_true(entry.get("stratum-active")),
                    accepted=integer(entry.get("accepted")),
                    rejected=integer(entry.get("rejected")),
                    last_share_ts=integer(entry.get("last-share-time")) or None,
                )
            )
    return tuple(pools)
