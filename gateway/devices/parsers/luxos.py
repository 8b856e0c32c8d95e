"""LuxOS (LUXminer) on Antminers: the cgminer-compatible RPC on 4028 plus LUXminer's own commands.

Device facts this parser relies on (protocols.md §6; fixtures tests/fixtures/devices/luxos, an S19k Pro on
LUXminer 2025.4.8):
* Rates are GHS. SUMMARY `GHS 5s` is the real-time rate. Per board, DEVS `MHS 5s` is real time, whereas
  STATS `chain_rateN` is the since-boot average (it equals DEVS `MHS av`; STATS "total rate" is not a
  total at all): boards therefore come from DEVS, and STATS only adds chip counts and chip temperatures.
  STATS chain N is DEVS `ID` N-1 (chain_rate1 = ID 0's MHS av); we report slot N, the chain number stock
  firmware uses on the same hardware. DEVS arrive out of order.
* `power` POWER[{Watts, PSU}] is the firmware's power figure. `PSU: false` means LUXminer computed it
  rather than reading the PSU; either way it is the miner's own number, marked `measured` (§3).
* `temps` gives four PCB sensors per board, labelled in METADATA (intake / exhaust, top / bottom); STATS
  `temp_chipN` repeats the same four values under the name "chip". We report what the firmware labels.
* `config` says whether the miner is curtailed: `CurtailMode` "None" when mining, "Sleep" when asleep
  (then also `IsPowerSupplyOn` false). `Profile` names the active entry of `profiles`, whose `Step` is
  relative to the stock "default" profile and whose `Hashrate` is the target for it.
* `pools` `Last Share Time` is "HH:MM:SS" ago; two pool groups may be active at once (quota split).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.devices.errors import ProtocolError
from gateway.devices.model import BoardReading, FirmwareFamily, MinerIdentity, MinerStatus, Mode, Sample
from gateway.devices.parsers import cgminer as cg
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    dash_list,
    expected_hashrate,
    first_section,
    integer,
    max_temperature,
    number,
    section,
    temperature,
)

MAKE = "Antminer"
COMMANDS = ("summary", "stats", "devs", "pools", "fans", "temps", "power", "profiles", "config", "version")
_CURTAILED = {"sleep", "curtail", "curtailed"}


class LuxosParser:
    command_keys: Mapping[str, str] = MappingProxyType({key: key for key in COMMANDS})

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        version = first_section(cg.optional(capture, "version"), "VERSION", "version")
        config = first_section(cg.optional(capture, "config"), "CONFIG", "config")
        stats = section(cg.optional(capture, "stats"), "STATS", "stats")
        if not (version or config or stats):
            raise ProtocolError("luxos: no usable 'version', 'config' or 'stats' reply to identify the miner")
        header = stats[0] if stats else {}
        model = cg.antminer_model(version.get("Type") or config.get("Model") or header.get("Type"))
        model = model or cg.antminer_model(ctx.model_hint)
        profile = ctx.profile_for(MAKE, model)
        firmware = cg.text(version.get("LUXminer")) or cg.text(version.get("Miner") or header.get("Miner"))
        mac = config.get("MACAddr") or next((e.get("miner_id") for e in stats if e.get("miner_id")), None)
        return MinerIdentity(
            make=MAKE,
            model=model,
            firmware=FirmwareFamily.LUXOS,
            firmware_version=firmware,
            api_version=cg.text(version.get("API")),
            mac=cg.normalize_mac(mac),
            serial=cg.text(config.get("SerialNumber")),
            hostname=cg.text(config.get("Hostname")),
            profile_key=profile.key if profile else None,
        )

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        errors: list[str] = []
        summary = cg.read_summary(cg.required(capture, "summary"))
        identity = self._identity(capture, ctx)
        model = identity.model if identity else cg.antminer_model(ctx.model_hint)
        profile = ctx.profile_for(MAKE, model)
        config = first_section(cg.optional(capture, "config", errors), "CONFIG", "config")
        chains = _chain_stats(cg.optional(capture, "stats", errors))
        temps = _board_temps(cg.optional(capture, "temps", errors))

        sleeping = str(config.get("CurtailMode", "None")).strip().lower() in _CURTAILED or (
            config.get("IsPowerSupplyOn") is False
        )
        if sleeping:
            status = MinerStatus.SLEEPING
        elif str(config.get("SystemStatus", "Normal")).strip().lower() not in {"normal", ""}:
            status = cg.status_from_hashrate(summary.hashrate_ths)
            errors.append(f"system status: {config['SystemStatus']}")
        else:
            status = cg.status_from_hashrate(summary.hashrate_ths)

        devs = cg.read_devs(cg.optional(capture, "devs", errors))
        boards = []
        for dev in devs:
            board_id = dev.chain if dev.chain is not None else dev.index
            chain_number = board_id + 1  # STATS and stock firmware count chains from 1, DEVS `ID` from 0
            chain = chains.get(chain_number, {})
            board_temps = temps.get(board_id, [])
            boards.append(
                BoardReading(
                    slot=chain_number,
                    hashrate_ths=dev.hashrate_ths,
                    expected_ths=dev.nominal_ths,
                    temp_chip_c=max_temperature(dash_list(chain.get("temp_chip"))) or temperature(dev.temp_c),
                    temp_board_c=max_temperature([t for _, t in board_temps]),
                    chips_ok=integer(chain.get("chain_acn")),
                    chips_expected=profile.chips_per_board if profile else None,
                    hw_errors=dev.hw_errors,
                    active=dev.enabled and not sleeping,
                    serial=dev.serial,
                )
            )

        nominal = [d.nominal_ths for d in devs if d.nominal_ths]
        expected, expected_source = expected_hashrate(sum(nominal) if nominal else None, profile, None)
        mode = (
            Mode.SLEEP if sleeping else self._mode(capture, config, profile.nominal_ths if profile else None)
        )
        watts_reported = first_section(cg.optional(capture, "power", errors), "POWER", "power").get("Watts")
        watts, source = cg.power(watts_reported, profile, summary.hashrate_ths, mode)
        pools = cg.read_pools(cg.optional(capture, "pools", errors))
        fans = cg.read_fans(cg.optional(capture, "fans", errors))
        inlets = [t for board in temps.values() for label, t in board if "intake" in label]
        outlets = [t for board in temps.values() for label, t in board if "exhaust" in label]
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
            power_limit_w=_power_limit(capture, config),
            boards=tuple(sorted(boards, key=lambda b: b.slot)),
            fans_rpm=cg.trim_fans(fans, profile),
            inlet_c=min(inlets) if inlets else None,
            outlet_c=max(outlets) if outlets else None,
            accepted=summary.accepted,
            rejected=summary.rejected,
            hw_errors=summary.hw_errors,
            last_share_ts=cg.last_share_ts(pools) or _devs_last_share(capture),
            pool_url=cg.pool_url(pools),
            pools=pools,
            uptime_s=summary.uptime_s,
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )

    def _identity(self, capture: Capture, ctx: ParseContext) -> MinerIdentity | None:
        """Identity rides along in the sample when the capture carries it; its absence costs no sample."""
        try:
            return self.identify(capture, ctx)
        except ProtocolError:
            return None

    @staticmethod
    def _mode(capture: Capture, config: Mapping[str, Any], profile_stock_ths: float | None) -> Mode:
        """From the active profile: its target hashrate against the stock ("default", step 0) profile's,
        or the nameplate rate in `config`. Without `profiles`, the sign of the profile step decides."""
        profiles = section(cg.optional(capture, "profiles"), "PROFILES", "profiles")
        default = next((p for p in profiles if p.get("Profile Name") == "default"), {})
        active = active_profile(capture, config)
        stock = number(config.get("NameplateTHS")) or number(default.get("Hashrate"))
        if active is not None:
            return cg.classify_mode(number(active.get("Hashrate")), stock or profile_stock_ths)
        step = integer(config.get("ProfileStep"))
        if step is None or step == 0:
            return Mode.NORMAL
        return Mode.LOW if step < 0 else Mode.HIGH


def active_profile(capture: Capture, config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `profiles` entry `config` names as running, if both replies are there."""
    profiles = section(cg.optional(capture, "profiles"), "PROFILES", "profiles")
    return next((p for p in profiles if str(p.get("Profile Name")) == str(config.get("Profile"))), None)


def _power_limit(capture: Capture, config: Mapping[str, Any]) -> float | None:
    """The power target: newer LUXminer builds report the ATM/power target as `ActualPowerTarget`;
    otherwise it is the running profile's `Watts` (a LuxOS profile *is* a power step: the firmware's
    own table of clock, voltage and the watts it draws there)."""
    explicit = cg.positive(config.get("ActualPowerTarget"))
    if explicit is not None:
        return explicit
    profile = active_profile(capture, config)
    return cg.positive(profile.get("Watts")) if profile is not None else None


def _chain_stats(reply: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    """STATS per-chain keys regrouped by chain number: {1: {"chain_acn": 77, "temp_chip": "47-34-34-47"}}."""
    chains: dict[int, dict[str, Any]] = {}
    for entry in section(reply, "STATS", "stats"):
        for prefix in ("chain_acn", "temp_chip", "chain_hw"):
            for number_, value in cg.indexed(entry, prefix).items():
                chains.setdefault(number_, {})[prefix] = value
    return chains


def _board_temps(reply: Mapping[str, Any] | None) -> dict[int, list[tuple[str, float]]]:
    """Board id -> [(lower-case sensor label, C)]. Labels come from METADATA ("Board Intake (top)"); the
    sensor keys (TopLeft ...) are only positions, so which side is the intake is never assumed."""
    labels = {
        key: str(cg.dig(meta, "Label") or key).lower()
        for entry in section(reply, "METADATA")
        for key, meta in entry.items()
        if isinstance(meta, Mapping)
    }
    boards: dict[int, list[tuple[str, float]]] = {}
    for entry in section(reply, "TEMPS", "temps"):
        board = integer(entry.get("ID"))
        if board is None:
            continue
        for key, label in labels.items():
            value = temperature(entry.get(key))
            if value is not None:
                boards.setdefault(board, []).append((label, value))
    return boards


def _devs_last_share(capture: Capture) -> int | None:
    """Fallback when `pools` is missing: DEVS `Last Share Time` is an epoch on LUXminer."""
    devs = section(cg.optional(capture, "devs"), "DEVS", "devs")
    times = [t for t in (cg.share_time(e.get("Last Share Time"), None, None) for e in devs) if t]
    return max(times) if times else None


PARSER = LuxosParser()
