"""The Avalon `stats` reply: Canaan's packed "MM ID0" string, built from a `Snapshot`.

Two dialects, each following its capture (tests/fixtures/devices/avalon):
* A-series (a1246_stats.json): `"MM ID0": "Ver[1246-83-...] ... MGHS[a b c] MTmax[..] MTavg[..] ...
  PVT_T0[..] ... MW0[..] ... WORKMODE[1]"`, per-board tokens inside the one string;
* Avalon Q (avalon_q_stats.json): `"MM ID0:Summary": "'STATS':{...}"` with the single board's per-chip
  data split off into `"HBinfo": "'HB0':{PVT_T0[..] PVT_V0[..] MW0[..]}"`, and `ITemp`/`HBITemp`/
  `HBOTemp` instead of `Temp`/`MTmax`/`MTavg`.

Where the numbers come from: rates are GH/s (`GHSspd` real-time total, `MGHS` per board, `GHSavg`
since boot, `GHSmm` the MM's ideal for the configured work mode); `PS[4]` is the hash-board rail's watts
(0 while soft-off, as on the Q capture; neither capture has `WALLPOWER`); `MTmax`/`MTavg` a board's
hottest / mean chip sensor, `TMax`/`TAvg` the same over the machine; `PVT_Tn` one temperature per chip,
spread between the board's coolest and hottest sensor; `MWn` per-chip work counters, 0 for a chip that
does not hash (a dead board's). While soft-off the Q reports `TMax[0] TAvg[0]` (chips unpowered) and
`SoftOFF[4]`; `SoftOffTime`/`SoftOnTime` echo the last requests.
"""

from __future__ import annotations

import hashlib
from statistics import mean
from typing import Any

from gateway.simulator.families.avalon_state import STATES, is_q, mm_workmode, soft_off
from gateway.simulator.miner import BoardSnapshot, SimMiner, Snapshot

CGMINER = "4.11.1"
DESCRIPTION = f"cgminer {CGMINER}"
FAN_MAX_RPM = 6600
RAIL_VOLTS = 13.16  # PS[2] is the rail voltage x 100 (A1246 capture: 1316 with 242 A and 3189 W)


def dna(miner: SimMiner) -> str:
    return hashlib.sha256(miner.identity.serial.encode()).hexdigest()[:16]


def mac_hex(miner: SimMiner) -> str:
    """Canaan prints the MAC as 12 bare hex digits (pyasic re-inserts the colons)."""
    return miner.identity.mac.replace(":", "").lower()


def model_number(miner: SimMiner) -> str:
    return miner.profile.model.lstrip("Aa")


def bin_label(miner: SimMiner) -> str:
    """The A-series hashrate bin printed after the model ("1246-83" = the 83 TH/s bin)."""
    return f"{model_number(miner)}-{round(miner.profile.nominal_ths)}"


def version(miner: SimMiner) -> dict[str, Any]:
    fw = miner.identity.firmware_version
    if is_q(miner):
        return {
            "CGMiner": CGMINER,
            "API": "3.7",
            "PROD": "Avalon Q",
            "MODEL": "Q",
            "HWTYPE": "Q_MM1v1_X1",
            "SWTYPE": "MM319",
            "LVERSION": fw,
            "BVERSION": fw,
            "CGVERSION": fw,
            "HBMCUVERSION": "Q_hb_v1.1",
            "FANMCUVERSION": "Q_fb_v1.2",
            "DNA": dna(miner),
            "MAC": mac_hex(miner),
        }
    return {
        "CGMiner": CGMINER,
        "API": "3.7",
        "PROD": f"AvalonMiner {bin_label(miner)}",
        "MODEL": bin_label(miner),
        "HWTYPE": "MM3v2_X3",
        "SWTYPE": "MM314",
        "LVERSION": fw,
        "BVERSION": fw,
        "CGVERSION": fw,
        "DNA": dna(miner),
        "MAC": mac_hex(miner),
    }


def _ghs(ths: float) -> str:
    return f"{ths * 1000:.2f}"


def _join(values: list[Any]) -> str:
    return " ".join(str(v) for v in values)


def _chip_temps(board: BoardSnapshot) -> list[int]:
    low, high = min(board.chip_sensors_c), max(board.chip_sensors_c)
    count = max(board.chips, 1)
    return [low + round((high - low) * ((i * 37) % count) / max(count - 1, 1)) for i in range(count)]


def _chip_volts(board: BoardSnapshot) -> list[int]:
    return [300 + (i * 7) % 13 for i in range(board.chips)]


def _chip_work(board: BoardSnapshot, snap: Snapshot) -> list[int]:
    done = max(1, round(snap.uptime_s * 2.75))
    return [done if i < board.chips_ok else 0 for i in range(board.chips)]


def _common(miner: SimMiner, snap: Snapshot) -> dict[str, str]:
    """Tokens both dialects share, by name."""
    off = soft_off(miner)
    chips = [t for b in snap.boards for t in b.chip_sensors_c]
    watts = 0 if off else round(snap.power_w)
    ideal = miner.profile.mode(STATES.get(miner).mode).hashrate_ths
    limit = round(miner.profile.mode(STATES.get(miner).mode).power_w)
    fan_pct = round(100 * max(snap.fans_rpm, default=0) / FAN_MAX_RPM)
    return {
        "DNA": dna(miner),
        "SYSTEMSTATU": f"Work: {'In Idle' if off else 'In Work'}, Hash Board: {len(snap.boards)}",
        "Elapsed": str(snap.uptime_s),
        "HW": str(snap.hw_errors),
        "TMax": "0" if off and is_q(miner) else str(max(chips, default=0)),
        "TAvg": "0" if off and is_q(miner) else str(round(mean(chips)) if chips else 0),
        **{f"Fan{i + 1}": str(snap.fans_rpm[i]) if i < len(snap.fans_rpm) else "0" for i in range(4)},
        "FanR": f"{fan_pct}%",
        "PS": _join([0, 1214, round(RAIL_VOLTS * 100), round(watts / RAIL_VOLTS), watts, 1320, watts + 315]),
        "GHSspd": _ghs(snap.hashrate_ths),
        "DHspd": "0.000%",
        "GHSmm": _ghs(ideal),
        "GHSavg": _ghs(snap.average_ths),
        "MGHS": _join([_ghs(b.hashrate_ths) for b in snap.boards]),
        "TA": str(sum(b.chips for b in snap.boards)),
        "SoftOFF": "4" if off else "0",
        "ECHU": _join([0 for _ in snap.boards]),
        "ECMM": "0",
        "MPO": str(limit),
        "WORKMODE": str(mm_workmode(miner)),
    }


def a_series_mm(miner: SimMiner, snap: Snapshot) -> str:
    t = _common(miner, snap)
    boards = snap.boards
    tokens: list[tuple[str, str]] = [
        ("Ver", f"{bin_label(miner)}-{miner.identity.firmware_version}"),
        ("DNA", t["DNA"]),
        ("MEMFREE", "1201472.0"),
        ("NETFAIL", "0 0 0 0 0 0 0 0"),
        ("SYSTEMSTATU", t["SYSTEMSTATU"] + " "),
        ("Elapsed", t["Elapsed"]),
        ("BOOTBY", "0x08.00000000"),
        ("HW", t["HW"]),
        ("DH", "0.000%"),
        ("Temp", str(round(snap.inlet_c))),
        ("TMax", t["TMax"]),
        ("TAvg", t["TAvg"]),
        *((f"Fan{i}", t[f"Fan{i}"]) for i in range(1, 5)),
        ("FanR", t["FanR"]),
        ("Vo", "329"),
        ("PS", t["PS"]),
        ("GHSspd", t["GHSspd"]),
        ("DHspd", t["DHspd"]),
        ("GHSmm", t["GHSmm"]),
        ("GHSavg", t["GHSavg"]),
        ("Freq", "0.00" if soft_off(miner) else "502.41"),
        ("Led", "1" if miner.blinking else "0"),
        ("MGHS", t["MGHS"]),
        ("MTmax", _join([max(b.chip_sensors_c) for b in boards])),
        ("MTavg", _join([round(mean(b.chip_sensors_c)) for b in boards])),
        ("TA", t["TA"]),
        ("Core", "A3201"),
        ("POWS", "0"),
        ("HASHS", _join([0 for _ in boards])),
        ("POOLS", "0"),
        ("SoftOFF", t["SoftOFF"]),
        ("ECHU", t["ECHU"]),
        ("ECMM", t["ECMM"]),
        *((f"PVT_T{b.slot}", _join(_chip_temps(b))) for b in boards),
        *((f"PVT_V{b.slot}", _join(_chip_volts(b))) for b in boards),
        ("MW", _join([sum(_chip_work(b, snap)) for b in boards])),
        *((f"MW{b.slot}", _join(_chip_work(b, snap))) for b in boards),
        ("CRC", _join([0 for _ in boards])),
        ("POW_I2C", "OK"),
        ("ADJ", "1"),
        ("MPO", t["MPO"]),
        ("MVL", "87"),
        ("WORKMODE", t["WORKMODE"]),
    ]
    return " ".join(f"{key}[{value}]" for key, value in tokens)


def q_mm(miner: SimMiner, snap: Snapshot) -> str:
    t = _common(miner, snap)
    state = STATES.get(miner)
    fw = miner.identity.firmware_version
    board = snap.boards[0]
    tokens: list[tuple[str, str]] = [
        ("Ver", f"Q-{fw}"),
        ("LVer", fw),
        ("BVer", fw),
        ("HashMcu0Ver", "Q_hb_v1.1"),
        ("FanMcuVer", "Q_fb_v1.2"),
        ("CPU", "K230"),
        ("FW", "Release"),
        ("DNA", t["DNA"]),
        ("STATE", "2"),
        ("MEMFREE", "67892"),
        ("NETFAIL", "0 0 0 0 0 0 0 0"),
        ("SSID", ""),
        ("RSSI", "0"),
        ("NetDevType", "0"),
        ("SYSTEMSTATU", t["SYSTEMSTATU"]),
        ("Elapsed", t["Elapsed"]),
        ("BOOTBY", "0x01.00000000"),
        ("HW", t["HW"]),
        ("DH", "0.000%"),
        ("ITemp", str(round(snap.inlet_c))),
        ("HBITemp", str(min(board.pcb_sensors_c))),
        ("HBOTemp", str(max(board.pcb_sensors_c))),
        ("TMax", t["TMax"]),
        ("TAvg", t["TAvg"]),
        ("TarT", "65"),
        *((f"Fan{i}", t[f"Fan{i}"]) for i in range(1, 5)),
        ("FanR", t["FanR"]),
        ("SoftOffTime", str(state.soft_off_at)),
        ("SoftOnTime", str(state.soft_on_at)),
        ("FanErr", "0"),
        ("PS", t["PS"]),
        ("GHSspd", t["GHSspd"]),
        ("DHspd", t["DHspd"]),
        ("GHSmm", t["GHSmm"]),
        ("GHSavg", t["GHSavg"]),
        ("Freq", "282.86"),
        ("MGHS", t["MGHS"]),
        ("TA", t["TA"]),
        ("Core", "A3197S"),
        ("SoftOFF", t["SoftOFF"]),
        ("ECHU", t["ECHU"]),
        ("ECMM", t["ECMM"]),
        ("LcdOnoff", "1"),
        ("WORKMODE", t["WORKMODE"]),
        ("WORKLEVEL", str(state.worklevel)),
        ("MPO", t["MPO"]),
        ("ADJ", "1"),
        ("Nonce Mask", "25"),
    ]
    return "'STATS':{" + " ".join(f"{key}[{value}]" for key, value in tokens) + "}"


def q_hbinfo(snap: Snapshot) -> str:
    board = snap.boards[0]
    tokens = [
        (f"PVT_T{board.slot}", _join(_chip_temps(board))),
        (f"PVT_V{board.slot}", _join(_chip_volts(board))),
        (f"MW{board.slot}", _join(_chip_work(board, snap))),
    ]
    return f"'HB{board.slot}':{{" + " ".join(f"{k}[{v}]" for k, v in tokens) + "}"


def device_entry(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    """STATS[0]: the controller, with its MM string (and the Q's HBinfo)."""
    head: dict[str, Any] = {
        "STATS": 0,
        "ID": "AVALON0" if is_q(miner) else "AVA100",
        "Elapsed": snap.uptime_s,
        "Calls": 0,
        "Wait": 0.0,
        "Max": 0.0,
        "Min": 99999999.0,
    }
    if is_q(miner):
        return {**head, "MM ID0:Summary": q_mm(miner, snap), "HBinfo": q_hbinfo(snap)}
    return {**head, "MM Count": 1, "MM ID0": a_series_mm(miner, snap), "Nonce Mask": 25, "Smart Speed": 1}


def pool_entries(snap: Snapshot) -> list[dict[str, Any]]:
    """STATS[1..]: one per pool (cgminer's pool stats; clients take the uptime from POOL0's Elapsed)."""
    return [
        {
            "STATS": index + 1,
            "ID": f"POOL{index}",
            "Elapsed": snap.uptime_s,
            "Calls": 0,
            "Wait": 0.0,
            "Max": 0.0,
            "Min": 99999999.0,
            "Pool Calls": 0,
            "Pool Attempts": 0,
            "Work Diff": 65536.0 if pool.active else 0.0,
            "Times Sent": pool.accepted,
            "Times Recv": pool.accepted * 2,
        }
        for index, pool in enumerate(snap.pools)
    ]


def lite_entry(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    """`litestats`: the MM string alone (the Q's without HBinfo, as captured)."""
    if is_q(miner):
        return {"MM ID0:Summary": q_mm(miner, snap)}
    return {"MM ID0": a_series_mm(miner, snap)}
