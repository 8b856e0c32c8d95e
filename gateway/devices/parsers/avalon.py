"""Avalon (Canaan cgminer 4.11.1): A10/A11/A12 series and the Avalon Q home miner.

Almost everything comes from the MM string in `stats` (see `avalon_mm`); `summary`, `pools`, `version`
and `devs` are standard cgminer replies and fill in what the string lacks. Decisions, each checked
against the captures in tests/fixtures/devices/avalon:

* Hashrate: `GHSspd` is the real-time rate, `GHSavg` the since-boot average, `GHSmm` the MM's own ideal
  rate (used as the measured `expected_ths`). Per board only `MGHS` exists; on the A1246 capture the three
  MGHS values sum exactly to GHSavg, so it is a per-board *average*, reported as such.
* Power: `WALLPOWER` (newer MM strings) is the wall reading. Without it, `PS[4]` is the hash-board rail's
  output in watts: on the A1246 capture PS[2] x PS[3] = 13.16 V x 242 A = 3185 W against PS[4] = 3189 W,
  which pins the index. That is DC-side power (a few % under the wall), still a measurement. The MM
  reports 0 W on that rail while soft-off (Avalon Q capture), which excludes the controller, so a
  sleeping miner falls back to the profile's sleep watts, marked estimated.
* Sleep: `SoftOFF[n]` is 0 while working (A1246) and non-zero after `ascset softoff` (Avalon Q capture:
  SoftOFF[4], GHSspd 0, fans 0, SYSTEMSTATU "In Idle", SoftOffTime later than SoftOnTime). A non-zero flag
  with a non-zero real-time rate is believed less than the rate (the miner is hashing).
* Mode: `WORKMODE` means different things per model. Only the Avalon Q table is known: 0/1/2 are the
  Eco/Standard/Super levels of its app, mapped to low/normal/high. Other models report no mode.
* Temperatures: `Temp`/`ITemp` is the inlet; `HBOTemp` (Q) the hash-board outlet; `MTmax[i]` the hottest
  chip of board i (`TMax` on single-board machines). 0 means "no reading" (TMax[0] on a sleeping Q).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError, Unsupported
from gateway.devices.model import (
    BoardReading,
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    Mode,
    PoolReading,
    Sample,
    Source,
)
from gateway.devices.parsers import avalon_mm as mm_string
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    check_status,
    estimated_power,
    first_section,
    ghs_to_ths,
    integer,
    mhs_to_ths,
    safe,
    section,
    temperature,
)
from gateway.devices.profiles import MinerProfile

MAKE = "Avalon"
_KEYS = (
    "stats",
    "summary",
    "pools",
    "version",
    "devs",
    "devdetails",
    "litestats",
    "config",
    "check",
    "coin",
    "ascset_help",
    "ascset_softoff",
    "ascset_softon",
    "ascset_workmode",
)
# Avalon Q app levels (WORKMODE 0/1/2 = Eco/Standard/Super). Keyed by model: A-series values differ.
_WORKMODES: dict[str, dict[int, Mode]] = {"Avalon Q": {0: Mode.LOW, 1: Mode.NORMAL, 2: Mode.HIGH}}
_PS_WATTS_INDEX = 4
_FIRST_PLAUSIBLE_EPOCH = 1_000_000_000  # Avalon's pool "Last Share Time" is a monotonic clock (31279)


@dataclass(frozen=True, slots=True)
class _Readings:
    """The usable replies of one capture, already status-checked."""

    mm: dict[str, str]
    boards: dict[str, dict[str, str]]
    stats_entry: Mapping[str, Any]
    summary: Mapping[str, Any]
    devs: Mapping[str, Any]
    pools: list[Mapping[str, Any]]
    version: Mapping[str, Any]


def normalize_model(name: str | None) -> str | None:
    """'1246' / 'AvalonMiner 1246' -> 'A1246'; 'Q' / 'Avalon Q' -> 'Avalon Q'; '1166pro' -> 'A1166Pro'.
    The hashrate-bin suffix of version PROD/MODEL ('AvalonMiner 1246-83', '1246-83') is dropped."""
    if not name or not name.strip():
        return None
    token = re.sub(r"^avalon\s*(miner)?\s*", "", name.strip(), flags=re.IGNORECASE).strip()
    digits = re.fullmatch(r"[Aa]?(\d{3,4})([A-Za-z]*)(?:-\d+)?", token)
    if digits:
        return f"A{digits.group(1)}{digits.group(2).capitalize()}"
    return f"Avalon {token}" if token else None


def _model_and_firmware(ver: str | None) -> tuple[str | None, str | None]:
    """MM `Ver`: '<model>[-<grade>]-<firmware>' ('1246-83-21072802_4ec6bb0_211fc46', 'Q-25052801_14a19a2').
    The middle number on A-series strings tracks the unit's rated TH/s (83 here; GHSmm reads 83.9)."""
    if not ver or "-" not in ver:
        return None, None
    parts = ver.split("-")
    return normalize_model(parts[0]), parts[-1] or None


class AvalonParser:
    command_keys: Mapping[str, str] = {key: key for key in _KEYS}

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        readings = _readings(capture, [], need_data=False)
        identity = _identity(readings, ctx)
        if identity.model is None and identity.firmware_version is None and identity.mac is None:
            raise ProtocolError("no usable version or stats reply: cannot tell which Avalon this is")
        return identity

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        errors: list[str] = []
        readings = _readings(capture, errors, need_data=True)
        identity = _identity(readings, ctx)
        profile = ctx.profile_for(MAKE, identity.model)
        mm, summary = readings.mm, readings.summary

        rate = _first_rate(
            ghs_to_ths(mm_string.value(mm.get("GHSspd"))),
            mhs_to_ths(summary.get("MHS 5s")),
            ghs_to_ths(summary.get("GHS 5s")),
            mhs_to_ths(first_section(readings.devs, "DEVS").get("MHS 5s")),
        )
        if rate is None:
            raise ProtocolError("no real-time hashrate: neither MM GHSspd nor SUMMARY 'MHS 5s' present")
        soft_off = (integer(mm_string.value(mm.get("SoftOFF"))) or 0) != 0
        sleeping = soft_off and not rate
        errors.extend(_mm_errors(mm))
        if sleeping:
            status = MinerStatus.SLEEPING
        elif rate > 0:
            status = MinerStatus.MINING
        else:
            status = MinerStatus.ERROR if errors else MinerStatus.IDLE
        mode = Mode.SLEEP if sleeping else _mode(identity.model, mm)

        measured = mm_string.value(mm.get("WALLPOWER")) or _ps_watts(mm)
        power_w, power_source = _power(measured, profile, rate, mode)
        expected, expected_source = _expected(mm, profile, mode)

        pools = safe(lambda: _pools(readings.pools), errors, "pools") or ()
        active_pool = next((p for p in pools if p.active), None)
        boards = safe(lambda: _boards(readings, profile, sleeping), errors, "boards") or ()
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=status,
            hashrate_ths=rate,
            hashrate_avg_ths=_first_rate(
                ghs_to_ths(mm_string.value(mm.get("GHSavg"))), mhs_to_ths(summary.get("MHS av"))
            ),
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=power_w,
            power_source=power_source,
            power_limit_w=mm_string.value(mm.get("MPO")),
            boards=boards,
            fans_rpm=_fans(mm, profile),
            inlet_c=temperature(mm_string.value(mm.get("Temp") or mm.get("ITemp"))),
            outlet_c=temperature(mm_string.value(mm.get("HBOTemp"))),
            accepted=integer(summary.get("Accepted")),
            rejected=integer(summary.get("Rejected")),
            hw_errors=_first_int(summary.get("Hardware Errors"), mm_string.value(mm.get("HW"))),
            last_share_ts=active_pool.last_share_ts if active_pool else None,
            pool_url=active_pool.url if active_pool else None,
            pools=pools,
            uptime_s=_first_int(
                summary.get("Elapsed"),
                readings.stats_entry.get("Elapsed"),
                mm_string.value(mm.get("Elapsed")),
            ),
            mode=mode,
            errors=tuple(errors),
            identity=identity,
        )


def _readings(capture: Capture, errors: list[str], *, need_data: bool) -> _Readings:
    """Status-check each reply. An error reply to an optional command costs that command only (and is
    noted, unless it is "invalid command": the A-series may not know `version`); when nothing carries
    miner data, the first firmware error explains why (access denied -> AuthFailed)."""
    failures: list[DeviceError] = []

    def usable(key: str) -> Mapping[str, Any]:
        reply = capture.get(key)
        if reply is None:
            return {}
        if not isinstance(reply, Mapping):
            failures.append(ProtocolError(f"{key}: expected a JSON object, got {type(reply).__name__}"))
            return {}
        try:
            check_status(reply, key)
        except Unsupported:
            return {}  # "Invalid command": this firmware has no such report; not a fault, not a reason
        except DeviceError as err:
            failures.append(err)
            errors.append(str(err))
            return {}
        return reply

    stats = usable("stats") or usable("litestats")
    mm: dict[str, str] = {}
    boards: dict[str, dict[str, str]] = {}
    stats_entry: Mapping[str, Any] = {}
    for entry in section(stats, "STATS"):
        mm, boards = mm_string.find_mm(entry)
        if mm:
            stats_entry = entry
            break
    summary = first_section(usable("summary"), "SUMMARY")
    devs = usable("devs")
    if need_data and not mm and not summary:
        if failures:
            raise failures[0]
        raise ProtocolError("no usable data: need a stats reply with an 'MM ID0' string or a SUMMARY section")
    return _Readings(
        mm=mm,
        boards=boards,
        stats_entry=stats_entry,
        summary=summary,
        devs=devs,
        pools=section(usable("pools"), "POOLS"),
        version=first_section(usable("version"), "VERSION"),
    )


def _identity(readings: _Readings, ctx: ParseContext) -> MinerIdentity:
    version, mm = readings.version, readings.mm
    mm_model, mm_firmware = _model_and_firmware(mm.get("Ver"))
    model = (
        normalize_model(_text(version.get("PROD")))
        or normalize_model(_text(version.get("MODEL")))
        or mm_model
        or normalize_model(ctx.model_hint)
    )
    dna = str(version.get("DNA") or mm.get("DNA") or "")
    profile = ctx.profile_for(MAKE, model)
    return MinerIdentity(
        make=MAKE,
        model=model,
        firmware=FirmwareFamily.AVALON,
        firmware_version=_text(version.get("LVERSION")) or mm.get("LVer") or mm_firmware,
        api_version=_text(version.get("API")),
        mac=_mac(_text(version.get("MAC"))),
        # The API exposes no printed serial; DNA is the controller's unique chip ID. Contributors mask
        # it in public captures ("<DELETED>"), so anything that is not hex is not an identifier.
        serial=dna if re.fullmatch(r"[0-9a-fA-F]{8,}", dna) else None,
        profile_key=profile.key if profile else None,
    )


def _boards(readings: _Readings, profile: MinerProfile | None, sleeping: bool) -> tuple[BoardReading, ...]:
    mm = readings.mm
    rates = mm_string.values(mm.get("MGHS"))
    count = len(rates) or _board_count(mm.get("SYSTEMSTATU")) or 0
    chip_max = mm_string.values(mm.get("MTmax"))
    total_chips = integer(mm_string.value(mm.get("TA")))
    if total_chips and count:
        chips_expected: int | None = total_chips // count
    else:
        chips_expected = profile.chips_per_board if profile else None
    boards = []
    for slot in range(count):
        if chip_max:
            chip_c = temperature(chip_max[slot] if slot < len(chip_max) else None)
        else:
            chip_c = temperature(mm_string.value(mm.get("TMax"))) if count == 1 else None
        rate = rates[slot] if slot < len(rates) else None
        # Per-chip work counters: MWn in the MM string (A-series) or in HBinfo 'HBn' (Avalon Q). They
        # freeze while soft-off, so they say nothing about working chips then.
        work = mm.get(f"MW{slot}") or readings.boards.get(f"HB{slot}", {}).get(f"MW{slot}")
        chips_ok = None if sleeping or work is None else sum(1 for w in mm_string.values(work) if w)
        boards.append(
            BoardReading(
                slot=slot,
                # MGHS is the board's average; while soft-off the real-time rate of every board is 0.
                hashrate_ths=0.0 if sleeping else ghs_to_ths(rate),
                temp_chip_c=None if sleeping else chip_c,
                chips_ok=chips_ok,
                chips_expected=chips_expected,
                active=not sleeping,
            )
        )
    return tuple(boards)


def _power(
    measured: float | None, profile: MinerProfile | None, rate: float | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    if measured:
        return measured, Source.MEASURED
    return estimated_power(profile, rate, mode)


def _expected(
    mm: Mapping[str, str], profile: MinerProfile | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """GHSmm, the MM's own ideal, else the profile's. Asleep too: the rated capacity, as the Antminer
    backend reports it (the soft-off Avalon Q still says GHSmm 55032.79 - its Eco-level ideal)."""
    ideal = ghs_to_ths(mm_string.value(mm.get("GHSmm")))
    if ideal is not None:
        return ideal, Source.MEASURED
    if profile is not None:
        return profile.mode(None if mode is Mode.SLEEP else mode).hashrate_ths, Source.ESTIMATED
    return None, None


def _board_count(systemstatu: str | None) -> int | None:
    match = re.search(r"Hash Board:\s*(\d+)", systemstatu or "")
    return int(match.group(1)) if match else None


def _fans(mm: Mapping[str, str], profile: MinerProfile | None) -> tuple[int, ...]:
    """Fan1..Fan4. The MM always prints four slots; the profile says how many the model has. With it, a
    0 on an existing fan is a stopped fan (kept); without it, 0 could be an empty slot (dropped)."""
    readings = [integer(mm_string.value(mm.get(f"Fan{index}"))) for index in range(1, 5)]
    if profile is not None:
        return tuple(rpm for rpm in readings[: profile.fans] if rpm is not None)
    return tuple(rpm for rpm in readings if rpm)


def _ps_watts(mm: Mapping[str, str]) -> float | None:
    ps = mm_string.values(mm.get("PS"))
    return ps[_PS_WATTS_INDEX] if len(ps) > _PS_WATTS_INDEX else None


def _mode(model: str | None, mm: Mapping[str, str]) -> Mode | None:
    workmode = integer(mm_string.value(mm.get("WORKMODE")))
    return _WORKMODES.get(model or "", {}).get(workmode) if workmode is not None else None


def _mm_errors(mm: Mapping[str, str]) -> list[str]:
    """Non-zero MM (`ECMM`), per-hashboard (`ECHU`) and fan (`FanErr`) error codes, as firmware reports."""
    found = []
    if ecmm := integer(mm_string.value(mm.get("ECMM"))):
        found.append(f"ECMM {ecmm}")
    for slot, code in enumerate(mm_string.values(mm.get("ECHU"))):
        if code:
            found.append(f"ECHU board {slot}: {int(code)}")
    if fan_error := integer(mm_string.value(mm.get("FanErr"))):
        found.append(f"FanErr {fan_error}")
    return found


def _pools(entries: list[Mapping[str, Any]]) -> tuple[PoolReading, ...]:
    pools = []
    for entry in entries:
        url = _text(entry.get("URL"))
        if not url:
            continue
        last = integer(entry.get("Last Share Time"))
        pools.append(
            PoolReading(
                url=url,
                user=_text(entry.get("User")),
                status=_text(entry.get("Status")),
                active=entry.get("Stratum Active") is True,
                accepted=integer(entry.get("Accepted")),
                rejected=integer(entry.get("Rejected")),
                last_share_ts=last if last and last >= _FIRST_PLAUSIBLE_EPOCH else None,
            )
        )
    return tuple(pools)


def _first_rate(*rates: float | None) -> float | None:
    return next((rate for rate in rates if rate is not None), None)


def _first_int(*candidates: Any) -> int | None:
    return next((value for value in map(integer, candidates) if value is not None), None)


def _mac(value: str | None) -> str | None:
    """The A-series prints the MAC as 12 bare hex digits ("b4a2eb000001"); give it the usual form."""
    if value and re.fullmatch(r"[0-9A-Fa-f]{12}", value):
        return ":".join(value[i : i + 2] for i in range(0, 12, 2)).upper()
    return value


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


PARSER = AvalonParser()
