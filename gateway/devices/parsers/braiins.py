"""Braiins OS (BOSminer / BOSer) on Antminers: the cgminer-compatible RPC (port 4028) and the REST API
(`/api/v1`, BOS 25.07+). A capture holds one or the other; REST wins when both are present.

Device facts this parser relies on (protocols.md §4, fixtures in tests/fixtures/devices/braiins):
* RPC rates are MHS (`MHS 5s` 15740915.84 = 15.74 TH/s on an S9). `MHS 5s` is the real-time rate.
* S9 boards are DEVS `ASC` 0-2 with `ID` 6, 7, 8: the S9's connector numbers, which stock bmminer uses
  too, so they are the slots we report (a board keeps its slot, and its history, across a firmware
  swap). `temps` (TEMPS[{ID, Board, Chip}]) is joined to DEVS by `ID`. DEVS `Temperature` and TEMPS
  `Chip` read 0.0 on the S9: no sensor, not 0 C. REST hashboard ids are "1".."3", again stock's numbers.
* BOSminer+ 0.2 never names the model; the 0.4 DEVS Description carries the platform ("bosminer-plus-
  am1-s9"), and am1-s9 is unambiguously an S9. Otherwise the inventory's model hint decides.
* Watts: RPC `tunerstatus` ApproximateMinerPowerConsumption, REST `power_stats.approximated_consumption`.
  Both are the firmware's own figure, computed per unit from the tuner's calibration (the miner has no
  power meter). We mark it `measured` as ARCHITECTURE §3 reserves `estimated` for our profile-based
  figure, and the firmware's number is far closer to the wall than any model-wide profile. Without a
  tuner (BOS non-plus, or no tunerstatus) the profile estimate is used and marked `estimated`.
* REST replies nest units ({"gigahash_per_second": ..}, {"degree_c": ..}, {"watt": ..}); the tuner state's
  oneof is serialized as `powertargetmodestate`. `miner_details.status` is braiins.bos.v1.MinerStatus:
  1 not started, 2 normal, 3 paused, 4 suspended, 5 restricted.
"""

from __future__ import annotations

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
    expected_hashrate,
    first_section,
    ghs_to_ths,
    integer,
    section,
    temperature,
)

MAKE = "Antminer"  # Braiins OS runs on Antminers at our sites (its own BMM hardware is not deployed)

_PAUSED = 3
_STATUS_NOTES = {1: "bosminer not started", 4: "mining suspended by the firmware", 5: "restricted mode"}
_TUNER_ERROR = 4


def _gh(value: Any) -> float | None:
    return ghs_to_ths(cg.dig(value, "gigahash_per_second"))


class BraiinsParser:
    command_keys: Mapping[str, str] = MappingProxyType(
        {
            "summary": "summary",
            "devs": "devs",
            "pools": "pools",
            "fans": "fans",
            "temps": "temps",
            "version": "version",
            "tunerstatus": "tunerstatus",
            "devdetails": "devdetails",
            "rest:miner_stats": "rest_miner_stats",
            "rest:miner_details": "rest_miner_details",
            "rest:miner_hw_hashboards": "rest_miner_hw_hashboards",
            "rest:cooling_state": "rest_cooling_state",
            "rest:performance_tuner_state": "rest_performance_tuner_state",
            "rest:pools": "rest_pools",
            "rest:configuration_miner": "rest_configuration_miner",
        }
    )

    # --- identity ----------------------------------------------------------------------------------

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        details = capture.get("rest:miner_details")
        if isinstance(details, Mapping):
            return self._identify_rest(details, ctx)
        if not any(isinstance(capture.get(k), Mapping) for k in ("version", "devdetails", "summary", "devs")):
            raise ProtocolError(
                "braiins: no 'version', 'devdetails', 'summary' or 'rest:miner_details' reply"
            )
        version = cg.optional(capture, "version")
        entry = first_section(version, "VERSION", "version") if version else {}
        firmware = cg.text(entry.get("BOSminer+") or entry.get("BOSminer") or entry.get("BOSer"))
        details_entry = first_section(cg.optional(capture, "devdetails"), "DEVDETAILS", "devdetails")
        model = cg.antminer_model(details_entry.get("Model")) or self._platform_model(capture)
        model = model or cg.antminer_model(ctx.model_hint)
        profile = ctx.profile_for(MAKE, model)
        return MinerIdentity(
            make=MAKE,
            model=model,
            firmware=FirmwareFamily.BRAIINS,
            firmware_version=firmware,
            api_version=cg.text(entry.get("API")),
            profile_key=profile.key if profile else None,
        )

    @staticmethod
    def _platform_model(capture: Capture) -> str | None:
        for key in ("devs", "summary", "version", "pools", "fans", "temps"):
            if "-am1-s9" in cg.description(capture.get(key)):
                return "S9"
        return None

    def _identify_rest(self, details: Mapping[str, Any], ctx: ParseContext) -> MinerIdentity:
        identity = details.get("miner_identity") or {}
        model = cg.antminer_model(cg.dig(identity, "miner_model") or cg.dig(identity, "name"))
        model = model or cg.antminer_model(ctx.model_hint)
        profile = ctx.profile_for(MAKE, model)
        return MinerIdentity(
            make=MAKE,
            model=model,
            firmware=FirmwareFamily.BRAIINS,
            firmware_version=cg.text(cg.dig(details, "bos_version", "current")),
            mac=cg.normalize_mac(details.get("mac_address")),
            serial=cg.text(details.get("serial_number")),
            hostname=cg.text(details.get("hostname")),
            profile_key=profile.key if profile else None,
        )

    # --- samples -----------------------------------------------------------------------------------

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        if "rest:miner_stats" in capture:
            return self._parse_rest(capture, ctx)
        if "summary" in capture:
            return self._parse_rpc(capture, ctx)
        raise ProtocolError("braiins: the capture has neither 'summary' (RPC) nor 'rest:miner_stats' (REST)")

    def _parse_rpc(self, capture: Capture, ctx: ParseContext) -> Sample:
        errors: list[str] = []
        summary = cg.read_summary(cg.required(capture, "summary"))
        identity = self.identify(capture, ctx)
        profile = ctx.profile_for(MAKE, identity.model)
        devs = cg.read_devs(cg.optional(capture, "devs", errors))
        temps = {
            integer(t.get("ID")): t for t in section(cg.optional(capture, "temps", errors), "TEMPS", "temps")
        }
        tuner = first_section(cg.optional(capture, "tunerstatus", errors), "TUNERSTATUS", "tunerstatus")
        boards = []
        for dev in devs:
            sensors = temps.get(dev.chain, {})
            boards.append(
                BoardReading(
                    slot=dev.chain if dev.chain is not None else dev.index,
                    hashrate_ths=dev.hashrate_ths,
                    expected_ths=dev.nominal_ths,
                    temp_chip_c=temperature(sensors.get("Chip")) or temperature(dev.temp_c),
                    temp_board_c=temperature(sensors.get("Board")),
                    chips_expected=profile.chips_per_board if profile else None,
                    hw_errors=dev.hw_errors,
                    active=dev.enabled,
                )
            )
        nominal = [d.nominal_ths for d in devs if d.nominal_ths]
        expected, expected_source = expected_hashrate(sum(nominal) if nominal else None, profile, None)
        status = cg.status_from_hashrate(summary.hashrate_ths)
        mode = cg.classify_mode(expected, profile.nominal_ths if profile else None)
        watts, source = cg.power(
            tuner.get("ApproximateMinerPowerConsumption"), profile, summary.hashrate_ths, mode
        )
        pools = cg.read_pools(cg.optional(capture, "pools", errors))
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=status,
            hashrate_ths=summary.hashrate_ths,
            hashrate_avg_ths=summary.hashrate_avg_ths,
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=watts,
            power_source=source,
            power_limit_w=cg.positive(tuner.get("PowerLimit")),
            boards=tuple(sorted(boards, key=lambda b: b.slot)),
            fans_rpm=cg.trim_fans(cg.read_fans(cg.optional(capture, "fans", errors)), profile),
            accepted=summary.accepted,
            rejected=summary.rejected,
            hw_errors=summary.hw_errors,
            last_share_ts=cg.last_share_ts(pools),
            pool_url=cg.pool_url(pools),
            pools=pools,
            uptime_s=summary.uptime_s,
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )

    def _parse_rest(self, capture: Capture, ctx: ParseContext) -> Sample:
        stats = capture.get("rest:miner_stats")
        if not isinstance(stats, Mapping) or not isinstance(stats.get("miner_stats"), Mapping):
            raise ProtocolError("rest:miner_stats: expected an object with 'miner_stats'")
        errors: list[str] = []
        details = _object(capture, "rest:miner_details")
        identity = self._identify_rest(details, ctx)
        profile = ctx.profile_for(MAKE, identity.model)
        rates = cg.dig(stats, "miner_stats", "real_hashrate")
        hashrate = _gh(cg.dig(rates, "last_5s"))
        expected, expected_source = expected_hashrate(
            _gh(cg.dig(stats, "miner_stats", "nominal_hashrate")), profile, None
        )

        status = cg.status_from_hashrate(hashrate)
        firmware_status = integer(details.get("status"))
        if firmware_status == _PAUSED:
            status = MinerStatus.SLEEPING
        elif firmware_status in _STATUS_NOTES:
            errors.append(f"firmware status: {_STATUS_NOTES[firmware_status]}")
        tuner = _object(capture, "rest:performance_tuner_state")
        if integer(tuner.get("overall_tuner_state")) == _TUNER_ERROR:
            errors.append("performance tuner reports an error")

        stock = _gh(details.get("sticker_hashrate")) or (profile.nominal_ths if profile else None)
        mode = Mode.SLEEP if status is MinerStatus.SLEEPING else cg.classify_mode(expected, stock)
        watts, source = cg.power(
            cg.dig(stats, "power_stats", "approximated_consumption", "watt"), profile, hashrate, mode
        )
        limit = cg.dig(tuner, "mode_state", "powertargetmodestate", "current_target", "watt")
        if limit is None:
            limit = cg.dig(_object(capture, "rest:configuration_miner"), "tuner", "power_target", "watt")

        boards = self._rest_boards(capture, profile.chips_per_board if profile else None, status)
        pools = _rest_pools(capture.get("rest:pools"))
        pool_stats = cg.dig(stats, "pool_stats")
        pool_stats = pool_stats if isinstance(pool_stats, Mapping) else {}
        cooling = _object(capture, "rest:cooling_state")
        fans = [integer(f.get("rpm")) for f in _objects(cooling.get("fans"))]
        inlets = [b[1] for b in boards if b[1] is not None]
        outlets = [b[2] for b in boards if b[2] is not None]
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=status,
            hashrate_ths=hashrate,
            hashrate_avg_ths=_gh(cg.dig(rates, "since_restart")),
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=watts,
            power_source=source,
            power_limit_w=cg.positive(limit),
            boards=tuple(b[0] for b in boards),
            fans_rpm=cg.trim_fans([f for f in fans if f is not None], profile),
            inlet_c=min(inlets) if inlets else None,
            outlet_c=max(outlets) if outlets else None,
            accepted=integer(pool_stats.get("accepted_shares")),
            rejected=integer(pool_stats.get("rejected_shares")),
            last_share_ts=cg.share_time(cg.dig(pool_stats, "last_share_time", "seconds"), None, None),
            pool_url=cg.pool_url(pools),
            pools=pools,
            uptime_s=integer(details.get("bosminer_uptime_s")),
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )

    @staticmethod
    def _rest_boards(
        capture: Capture, chips_expected: int | None, status: MinerStatus
    ) -> list[tuple[BoardReading, float | None, float | None]]:
        """Each board with its lowest inlet and highest outlet temperature (for the miner's inlet/outlet)."""
        boards = []
        hashboards = _objects(_object(capture, "rest:miner_hw_hashboards").get("hashboards"))
        for position, board in enumerate(hashboards):
            board_id = integer(board.get("id"))  # "1", "2", "3"
            rates = cg.dig(board, "stats", "real_hashrate")
            reading = BoardReading(
                slot=board_id if board_id is not None else position + 1,  # "1".."3", as stock counts
                hashrate_ths=_gh(cg.dig(rates, "last_5s")),
                expected_ths=_gh(cg.dig(board, "stats", "nominal_hashrate")),
                temp_chip_c=temperature(cg.dig(board, "highest_chip_temp", "temperature", "degree_c")),
                temp_board_c=temperature(cg.dig(board, "board_temp", "degree_c")),
                chips_ok=integer(board.get("chips_count")),
                chips_expected=chips_expected,
                active=board.get("enabled") is not False and status is not MinerStatus.SLEEPING,
                serial=cg.text(board.get("serial_number")),
            )
            inlet = temperature(cg.dig(board, "lowest_inlet_temp", "degree_c"))
            outlet = temperature(cg.dig(board, "highest_outlet_temp", "degree_c"))
            boards.append((reading, inlet, outlet))
        return sorted(boards, key=lambda b: b[0].slot)


def _object(capture: Capture, key: str) -> Mapping[str, Any]:
    value = capture.get(key)
    return value if isinstance(value, Mapping) else {}


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _rest_pools(reply: Any) -> tuple[PoolReading, ...]:
    """`/api/v1/pools` is a list of pool groups, each with its pools; flattened in group order."""
    pools = []
    for group in _objects(reply):
        for pool in _objects(group.get("pools")):
            url = cg.text(pool.get("url"))
            if url is None:
                continue
            alive = pool.get("alive")
            pools.append(
                PoolReading(
                    url=url,
                    user=cg.text(pool.get("user")),
                    status=None if alive is None else ("Alive" if alive else "Dead"),
                    active=pool.get("active") is True,
                    accepted=integer(cg.dig(pool, "stats", "accepted_shares")),
                    rejected=integer(cg.dig(pool, "stats", "rejected_shares")),
                    last_share_ts=cg.share_time(
                        cg.dig(pool, "stats", "last_share_time", "seconds"), None, None
                    ),
                )
            )
    return tuple(pools)


PARSER = BraiinsParser()
