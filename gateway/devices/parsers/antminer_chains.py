"""Hashboards (chains) and fans of a stock Antminer, from either shape of its `stats` reply.

Two shapes exist and both can arrive under either capture key (`stats` over RPC, `stats.cgi` over HTTP):

* **keyed** (bmminer / "cgminer 1.0.0", S9..S19 RPC): one flat object with a fixed array of chain slots
  spelled into key names — `chain_acnN`, `chain_acsN`, `chain_rateN`, `temp_pcbN`, ... for N in 1..4
  (S17/S19) or 1..16 (S9 era). Unused slots are zeros and empty strings; the S9 puts its three boards in
  slots 6, 7, 8 (the connectors' numbers), so slot numbers are kept as the firmware gives them.
* **list** (the "new API": `stats.cgi` on S19 2022+/S21, or RPC `{"command":"stats","new_api":true}`):
  `chain: [{index, rate_real, rate_ideal, asic_num, temp_pcb[4], temp_chip[4], hw, sn}]`, `fan: [...]`.
  `index` is 0-based; we report slot `index + 1` so one miner read over either API (the keyed RPC form
  counts chains from 1) keeps the same slot numbers and its board history does not split in two.

`read_chains` only extracts what each chain says; `assemble_boards` then applies what the parser decided
about the whole miner (asleep or not) and what the profile expects (boards the firmware cannot see).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.devices.model import BoardReading
from gateway.devices.parsers.common import (
    dash_list,
    integer,
    max_temperature,
    rate_to_ths,
    temperature,
)
from gateway.devices.profiles import MinerProfile

_SLOT_KEY = re.compile(r"^(?:chain_acn|chain_acs|chain_rate)(\d+)$")
_FAN_KEY = re.compile(r"^fan(\d+)$")  # not fan_num: that is a count, not a reading


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReading:
    """What the firmware says about one chain it can see."""

    slot: int
    hashrate_ths: float | None = None
    expected_ths: float | None = None
    temp_chip_c: float | None = None
    temp_board_c: float | None = None
    chips_detected: int | None = None  # chain_acnN / asic_num: chips that answered at init
    chips_ok: int | None = None  # 'o' in the chip map; the detected count when there is no map
    chip_map: bool = False  # the firmware sent a per-chip o/x map
    hw_errors: int | None = None
    serial: str | None = None
    inlet_c: tuple[float, ...] = ()
    outlet_c: tuple[float, ...] = ()


def read_chains(entry: Mapping[str, Any]) -> list[ChainReading]:
    """The chains the firmware can see, in slot order. Empty slots of the keyed array are not chains."""
    if isinstance(entry.get("chain"), list):
        chains = [_list_chain(item) for item in entry["chain"] if isinstance(item, Mapping)]
        return sorted((c for c in chains if c is not None), key=lambda c: c.slot)
    unit = rate_unit(entry)
    slots = sorted(
        {int(m.group(1)) for key in entry if key.startswith("chain_") and (m := _SLOT_KEY.match(key))}
    )
    return [chain for slot in slots if (chain := _keyed_chain(entry, slot, unit)) is not None]


def rate_unit(entry: Mapping[str, Any]) -> str | None:
    """The entry's `rate_unit` ("GH" keyed, "GH/s" list), or None (GH/s) when absent or not text."""
    unit = entry.get("rate_unit")
    return unit if isinstance(unit, str) else None


def read_fans(entry: Mapping[str, Any], expected: int | None) -> tuple[int, ...]:
    """Fan speeds in rpm. `expected` is the profile's fan count, used only when the firmware omits fan_num.

    The keyed form is a fixed array fan1..fan8 where 0 means "no fan in this slot" (the S9 fills fan5 and
    fan6 only) — but a real stopped fan also reads 0. So the spinning fans are listed in slot order and,
    when fewer spin than `fan_num` says exist, the missing ones are reported as 0 rpm: a stopped fan is a
    finding for the rules engine, not an absence. The list form has exactly one entry per fan: taken as is.
    """
    if isinstance(entry.get("fan"), list):
        return tuple(rpm for rpm in (integer(v) for v in entry["fan"]) if rpm is not None)
    readings = sorted(
        (int(m.group(1)), rpm)
        for key, value in entry.items()
        if key.startswith("fan") and (m := _FAN_KEY.match(key)) and (rpm := integer(value)) is not None
    )
    spinning = tuple(rpm for _, rpm in readings if rpm > 0)
    count = integer(entry.get("fan_num"))
    if count is None:
        count = expected or 0
    return spinning + (0,) * max(0, count - len(spinning))


def _keyed_chain(entry: Mapping[str, Any], slot: int, unit: str | None) -> ChainReading | None:
    detected = integer(entry.get(f"chain_acn{slot}"))
    chip_map = str(entry.get(f"chain_acs{slot}") or "")
    raw_rate = entry.get(f"chain_rate{slot}")
    has_rate = raw_rate not in (None, "")
    if not (detected or chip_map.strip() or has_rate):
        return None  # an unused slot of the fixed array
    pcb = dash_list(entry.get(f"temp_pcb{slot}"))
    chip = dash_list(entry.get(f"temp_chip{slot}"))
    # temp_pcbN/temp_chipN ("73-45-64-65", S17+) are per-sensor; older firmware (S9) only has tempN, the
    # board (PCB) sensor, and temp2_N/temp3_N, the chip-side readings of the chain's first and second
    # sensor (bmminer's api stats fill temp2_/temp3_ from the same chip field it joins into temp_chipN).
    # On the S19 the two agree: temp1 == max(temp_pcb1), temp2_1 == max(temp_chip1).
    board_c = (
        max_temperature(pcb) if any(temperature(v) for v in pcb) else temperature(entry.get(f"temp{slot}"))
    )
    chip_c = max_temperature(chip) or max_temperature(
        [entry.get(f"temp2_{slot}"), entry.get(f"temp3_{slot}")]
    )
    inlet, outlet = _edges(pcb)
    ok = chip_map.count("o") if chip_map.strip() else detected
    return ChainReading(
        slot=slot,
        hashrate_ths=rate_to_ths(raw_rate, unit) if has_rate else None,
        expected_ths=_positive(rate_to_ths(entry.get(f"chain_rateideal{slot}"), unit)),
        temp_chip_c=chip_c,
        temp_board_c=board_c,
        chips_detected=detected or None,
        chips_ok=ok,
        chip_map=bool(chip_map.strip()),
        hw_errors=integer(entry.get(f"chain_hw{slot}")),
        inlet_c=inlet,
        outlet_c=outlet,
    )


def _list_chain(item: Mapping[str, Any]) -> ChainReading | None:
    index = integer(item.get("index"))
    if index is None:
        return None
    pcb = dash_list(item.get("temp_pcb"))  # a list here; dash_list passes lists through
    chip = dash_list(item.get("temp_chip"))
    detected = integer(item.get("asic_num"))
    chip_map = str(item.get("asic") or "")  # the o/x map, where the firmware sends one
    inlet, outlet = _edges(pcb)
    serial = str(item.get("sn") or "").strip() or None
    return ChainReading(
        slot=index + 1,
        hashrate_ths=rate_to_ths(item.get("rate_real"), "GH"),
        expected_ths=_positive(rate_to_ths(item.get("rate_ideal"), "GH")),
        temp_chip_c=max_temperature(chip),
        temp_board_c=max_temperature(pcb),
        chips_detected=detected or None,
        chips_ok=chip_map.count("o") if chip_map.strip() else detected,
        chip_map=bool(chip_map.strip()),
        hw_errors=integer(item.get("hw")),
        serial=serial,
        inlet_c=inlet,
        outlet_c=outlet,
    )


def _edges(pcb: Sequence[Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Inlet- and outlet-side PCB temperatures of one board.

    Bitmain's four-sensor boards (S17..S21 air-cooled) list the two sensors at the air inlet edge first and
    the two at the outlet edge last (pyasic issue #295; consistent with every capture we hold: the last pair
    runs 15-20 C hotter). Any other sensor count has no known order, so it gives no edge readings.
    """
    if len(pcb) != 4:
        return (), ()
    temps = [temperature(v) for v in pcb]
    return tuple(t for t in temps[:2] if t is not None), tuple(t for t in temps[2:] if t is not None)


def _positive(value: float | None) -> float | None:
    """Ideal rates of 0 mean "not computed" (empty slot, board not initialised), not an ideal of zero."""
    return value if value else None


def assemble_boards(
    chains: Sequence[ChainReading], *, asleep: bool, profile: MinerProfile | None, errors: list[str]
) -> tuple[BoardReading, ...]:
    """Boards for the sample: every chain the firmware lists, plus the ones the profile expects and the
    firmware does not list, reported inactive (there is nothing to read from them, and "dead" would claim
    a reading we do not have). Each missing board is also noted in `errors`."""
    boards = [
        BoardReading(
            slot=c.slot,
            hashrate_ths=c.hashrate_ths,
            expected_ths=c.expected_ths,
            temp_chip_c=c.temp_chip_c,
            temp_board_c=c.temp_board_c,
            # A sleeping S19's chip map reads 'xx xx ...': the chips are unpowered, not broken, so the map
            # says nothing about their health. Unknown is None, not 0 good chips.
            chips_ok=None if asleep and c.chip_map else c.chips_ok,
            chips_expected=c.chips_detected or (profile.chips_per_board if profile else None),
            hw_errors=c.hw_errors,
            active=not asleep,  # not hashing by design while the miner sleeps
            serial=c.serial,
        )
        for c in chains
    ]
    if profile is None or len(chains) >= profile.hashboards:
        return tuple(boards)
    present = {c.slot for c in chains}
    wanted = set(range(1, profile.hashboards + 1))
    if present <= wanted:
        # S17..S21 number their chains from 1, so the gaps in 1..hashboards are the missing boards.
        for slot in sorted(wanted - present):
            errors.append(
                f"chain {slot}: not detected by the firmware (profile expects {profile.hashboards} boards)"
            )
            boards.append(BoardReading(slot=slot, chips_expected=profile.chips_per_board, active=False))
    else:
        # S9-era slots (6..8) leave no way to tell which slot a missing board would occupy: count only.
        errors.append(f"firmware reports {len(chains)} of {profile.hashboards} hashboards")
    return tuple(sorted(boards, key=lambda b: b.slot))


def inlet_outlet(chains: Sequence[ChainReading], model: str | None) -> tuple[float | None, float | None]:
    """Inlet = the coolest inlet-edge PCB sensor over all boards; outlet = the hottest outlet-edge one.

    Stock Antminers have no air sensors: these are board temperatures at the intake and exhaust edges, a
    few degrees above the air there. The minimum at the inlet is the closest bound on intake air (one hot
    spot near the intake, like the 73 C on the S19 Pro's first board, does not drag it up); the maximum at
    the outlet is the worst exhaust a rule should see. Boards of a sleeping miner count too: cold boards
    read close to the room. Hydro models use another sensor layout (water in/out), so they report neither
    rather than something mislabelled.
    """
    if model and "hyd" in model.lower():
        return None, None
    inlet = [t for c in chains for t in c.inlet_c]
    outlet = [t for c in chains for t in c.outlet_c]
    return (min(inlet) if inlet else None), (max(outlet) if outlet else None)
