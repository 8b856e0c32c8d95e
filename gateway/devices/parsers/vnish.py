"""Vnish (AnthillOS, xminer-api) on Antminers: the cgminer-compatible RPC on 4028 for telemetry, plus the
web API (`/api/v1`) for watts, the running preset and identity. Either half alone still makes a sample.

Device facts this parser relies on (protocols.md §7; fixtures tests/fixtures/devices/vnish, an S21 Pro on
Vnish 1.2.7 recorded 2026-03-17):
* `version` answers STATUS E, Code 0, "Invalid command" on 1.2.7 (Code 0, not cgminer's 14): the model
  and version come from STATS[0] Type ("Antminer S21 Pro (Vnish 1.2.7)"), DEVDETAILS Name
  ("BTM_S21PRO") or web `/info`.
* SUMMARY has no `id`; STATS `GHS 5s` is a string, SUMMARY's a number. STATS per-chain keys are numbered
  from 1 as stock bmminer numbers them, and N is the slot we report: `chain_rateN` (GH/s, real time:
  they sum to `GHS 5s`), `chain_rateidealN`, `chain_consumptionN` (W per chain; their sum is the miner's
  watts), `chain_acnN` (chips), `temp_chipN`/`temp_pcbN` ("65-55-65-65"), `temp_sensN` "m-m-m-m" (m =
  missing), `fanN`; `fan_num` is a count, not a fan.
* `state` / web `miner_state`: "mining", "auto-tuning" (hashing while tuning), "stopped"/"paused" (by
  request: asleep), "failure". Web `/summary` `power_consumption` is metered by the PSU when
  `psu.psu_power_metering` is true; either way it is the firmware's number, so `measured`.
* The preset is the power target in watts ("2800"). `/perf-summary` `current_preset` is the one running
  now; `/settings` `overclock.preset` the one configured, which the preset switcher may have lowered
  for heat (the capture: configured 3160, running 2800). The running one is the limit; "disabled" is stock.
* Pools include the firmware's own "DevFee" pool (a few % of the time); it is never the pool URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.devices.errors import ProtocolError
from gateway.devices.model import (
    BoardReading,
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    Mode,
    PoolReading,
    Sample,
)
from gateway.devices.parsers import cgminer as cg
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    dash_list,
    expected_hashrate,
    first_section,
    ghs_to_ths,
    integer,
    max_temperature,
    number,
    section,
    temperature,
)

MAKE = "Antminer"
_HASHING_STATES = {"mining", "auto-tuning", "auto_tuning"}
_ASLEEP_STATES = {"stopped", "paused", "stopping", "pausing"}
_FAILED_STATES = {"failure", "failed", "broken", "error"}


class VnishParser:
    command_keys: Mapping[str, str] = MappingProxyType(
        {
            "summary": "rpc_summary",
            "stats": "rpc_stats",
            "pools": "rpc_pools",
            "devdetails": "rpc_devdetails",
            "version": "rpc_version",
            "web:info": "web_api_v1_info",
            "web:summary": "web_api_v1_summary",
            "web:perf-summary": "web_api_v1_perf-summary",
            "web:settings": "web_api_v1_settings",
            "web:autotune_presets": "web_api_v1_autotune_presets",
        }
    )

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        info = _object(capture, "web:info")
        stats = section(cg.optional(capture, "stats"), "STATS", "stats")
        header = stats[0] if stats else {}
        details = first_section(cg.optional(capture, "devdetails"), "DEVDETAILS", "devdetails")
        version = first_section(cg.optional(capture, "version"), "VERSION", "version")
        if not (info or header or details or version):
            raise ProtocolError("vnish: no usable 'web:info', 'stats', 'devdetails' or 'version' reply")
        model = (
            cg.antminer_model(info.get("miner") or info.get("model"))
            or cg.antminer_model(header.get("Type"))
            or cg.antminer_model(details.get("Name"))
            or cg.antminer_model(ctx.model_hint)
        )
        profile = ctx.profile_for(MAKE, model)
        network = cg.dig(info, "system", "network_status") or {}
        return MinerIdentity(
            make=MAKE,
            model=model,
            firmware=FirmwareFamily.VNISH,
            firmware_version=cg.text(info.get("fw_version"))
            or _version_in_type(header.get("Type"))
            or cg.text(header.get("Cgminer")),
            api_version=cg.text(version.get("API")),
            mac=cg.normalize_mac(cg.dig(network, "mac")),
            serial=cg.text(info.get("serial")),
            hostname=cg.text(cg.dig(network, "hostname")),
            profile_key=profile.key if profile else None,
        )

    def _identity(self, capture: Capture, ctx: ParseContext) -> MinerIdentity | None:
        """Identity rides along in the sample when the capture carries it; its absence costs no sample."""
        try:
            return self.identify(capture, ctx)
        except ProtocolError:
            return None

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        errors: list[str] = []
        web = _object(capture, "web:summary").get("miner")
        web = web if isinstance(web, Mapping) else {}
        if "summary" in capture:
            summary: cg.SummaryReading | None = cg.read_summary(cg.required(capture, "summary"))
        elif web:
            summary = None
        else:
            raise ProtocolError("vnish: the capture has neither 'summary' (RPC) nor 'web:summary'")
        identity = self._identity(capture, ctx)
        model = identity.model if identity else cg.antminer_model(ctx.model_hint)
        profile = ctx.profile_for(MAKE, model)
        stats = next(
            (e for e in section(cg.optional(capture, "stats", errors), "STATS", "stats") if "Elapsed" in e),
            {},
        )

        hashrate = summary.hashrate_ths if summary else ghs_to_ths(web.get("hr_realtime"))
        state = str(cg.dig(web, "miner_status", "miner_state") or stats.get("state") or "").strip().lower()
        if state in _ASLEEP_STATES:
            status = MinerStatus.SLEEPING
        elif state in _FAILED_STATES:
            status = MinerStatus.ERROR
            errors.append(f"miner state: {state}")
        else:
            status = cg.status_from_hashrate(hashrate)

        expected, expected_source = expected_hashrate(
            ghs_to_ths(stats.get("total_rateideal")) or ghs_to_ths(web.get("hr_nominal")), profile, None
        )
        stock = ghs_to_ths(web.get("hr_stock")) or (profile.nominal_ths if profile else None)
        mode = Mode.SLEEP if status is MinerStatus.SLEEPING else cg.classify_mode(expected, stock)
        chain_watts = [w for w in (number(v) for v in cg.indexed(stats, "chain_consumption").values()) if w]
        reported = web.get("power_consumption") or (sum(chain_watts) if chain_watts else None)
        watts, source = cg.power(reported, profile, hashrate, mode)

        chips_expected = profile.chips_per_board if profile else None
        active = status is not MinerStatus.SLEEPING
        boards = _rpc_boards(stats, chips_expected, active) or _web_boards(web, chips_expected, active)
        fans = [integer(v) for v in cg.indexed(stats, "fan").values()] or [
            integer(f.get("rpm")) for f in _objects(cg.dig(web, "cooling", "fans"))
        ]
        pools = cg.read_pools(cg.optional(capture, "pools", errors)) or _web_pools(web)
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=status,
            hashrate_ths=hashrate,
            hashrate_avg_ths=summary.hashrate_avg_ths if summary else ghs_to_ths(web.get("hr_average")),
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=watts,
            power_source=source,
            power_limit_w=preset_watts(capture),
            boards=tuple(sorted(boards, key=lambda b: b.slot)),
            fans_rpm=cg.trim_fans([f for f in fans if f is not None], profile),
            accepted=summary.accepted if summary else _pool_total(pools, "accepted"),
            rejected=summary.rejected if summary else _pool_total(pools, "rejected"),
            hw_errors=summary.hw_errors if summary else integer(web.get("hw_errors")),
            last_share_ts=cg.last_share_ts(pools),
            pool_url=cg.pool_url(pools),
            pools=pools,
            # The web API has no miner uptime (`miner_state_time` restarts at every state change).
            uptime_s=summary.uptime_s if summary else None,
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )


def preset_watts(capture: Capture) -> float | None:
    """The power target: the running preset, else the configured one; None for "disabled" (stock)."""
    running = cg.dig(_object(capture, "web:perf-summary"), "current_preset", "name")
    configured = cg.dig(_object(capture, "web:settings"), "miner", "overclock", "preset")
    for name in (running, configured):
        if name is not None:
            return cg.positive(name)
    return None


def power_target_range(presets: Any) -> tuple[int, int] | None:
    """(lowest, highest) preset watts from `/autotune/presets` (named by their watts; "disabled" is stock).
    The later power-target control clamps to this range."""
    watts = [integer(p.get("name")) for p in _objects(presets)]
    valid = [w for w in watts if w and w > 0]
    return (min(valid), max(valid)) if valid else None


def _version_in_type(value: Any) -> str | None:
    match = re.search(r"\(vnish\s+([^)]+)\)", value, re.IGNORECASE) if isinstance(value, str) else None
    return match.group(1).strip() if match else None


def _object(capture: Capture, key: str) -> Mapping[str, Any]:
    value = capture.get(key)
    return value if isinstance(value, Mapping) else {}


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _rpc_boards(stats: Mapping[str, Any], chips_expected: int | None, active: bool) -> list[BoardReading]:
    rates = cg.indexed(stats, "chain_rate")
    ideal = cg.indexed(stats, "chain_rateideal")
    chips = cg.indexed(stats, "chain_acn")
    chip_temps = cg.indexed(stats, "temp_chip")
    pcb_temps = cg.indexed(stats, "temp_pcb")
    hw = cg.indexed(stats, "chain_hw")
    return [
        BoardReading(
            slot=chain,
            hashrate_ths=ghs_to_ths(rate),
            expected_ths=ghs_to_ths(ideal.get(chain)),
            temp_chip_c=max_temperature(dash_list(chip_temps.get(chain))),
            temp_board_c=max_temperature(dash_list(pcb_temps.get(chain))),
            chips_ok=integer(chips.get(chain)),
            chips_expected=chips_expected,
            hw_errors=integer(hw.get(chain)),
            active=active,
        )
        for chain, rate in rates.items()
    ]


def _web_boards(web: Mapping[str, Any], chips_expected: int | None, active: bool) -> list[BoardReading]:
    boards = []
    for position, chain in enumerate(_objects(web.get("chains"))):
        chain_id = integer(chain.get("id"))
        statuses = chain.get("chip_statuses")
        chips = sum(integer(v) or 0 for v in statuses.values()) if isinstance(statuses, Mapping) else None
        boards.append(
            BoardReading(
                slot=chain_id if chain_id is not None else position + 1,
                hashrate_ths=ghs_to_ths(chain.get("hashrate_rt")),
                expected_ths=ghs_to_ths(chain.get("hashrate_ideal")),
                temp_chip_c=temperature(cg.dig(chain, "chip_temp", "max")),
                temp_board_c=temperature(cg.dig(chain, "pcb_temp", "max")),
                chips_ok=chips or None,
                chips_expected=chips_expected,
                hw_errors=integer(chain.get("hw_errors")),
                active=active,
            )
        )
    return boards


def _pool_total(pools: tuple[PoolReading, ...], field: str) -> int | None:
    """What SUMMARY would say: cgminer's Accepted/Rejected are the sums over all pools, fee pool included."""
    values = [getattr(p, field) for p in pools if getattr(p, field) is not None]
    return sum(values) if values else None


def _web_pools(web: Mapping[str, Any]) -> tuple[PoolReading, ...]:
    pools = []
    for pool in _objects(web.get("pools")):
        url = cg.text(pool.get("url"))
        if url is None:
            continue
        status = cg.text(pool.get("status"))
        pools.append(
            PoolReading(
                url=url,
                user=cg.text(pool.get("user")),
                status=status,
                active=(status or "").lower() == "active",
                accepted=integer(pool.get("accepted")),
                rejected=integer(pool.get("rejected")),
            )
        )
    return tuple(pools)


PARSER = VnishParser()
