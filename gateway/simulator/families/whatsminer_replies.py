"""btminer API v2 reply bodies (port 4028), built from a `Snapshot` in the shapes of the real captures
(tests/fixtures/devices/whatsminer: M31S 2020 firmware `summary`/`edevs`/`pools`, M20S 2021 native
`get_version`/`get_psu`/`status`, the sleeping M31S `status`).

* cgminer-style reports carry `"Description": "btminer"` in a STATUS list; native replies are flat
  (`"STATUS": "S", "Code": 131, "Msg": {...}`).
* Rates are MH/s. Every window (`MHS 5s/1m/5m/15m`, `HS RT`) reports the current rate; `MHS av` the
  since-boot average. Clients pick different windows (we read `HS RT`, pyasic `MHS 1m`).
* Board `Temperature` is the board's hottest PCB sensor, `Chip Temp Min/Max/Avg` its chip sensors.
* While btminer is powered off the hashboards draw nothing: `Power`/`Power_RT` read 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import mean
from typing import Any

from gateway.simulator.families.base import status
from gateway.simulator.families.whatsminer_state import (
    MODE_NAMES,
    V2_API,
    error_codes,
    firmware_version,
    led_status,
    power_limit,
    powered_off,
    reported_model,
    running_mode,
)
from gateway.simulator.miner import BoardSnapshot, SimMiner, Snapshot

DESCRIPTION = "btminer"
NATIVE_DESCRIPTION = f"whatsminer v{V2_API}"
CODE_OK = 131
CHIP_FREQUENCY = 600
PSU = {"name": "P21", "model": "P21-12-3600-E", "hw_version": "", "sw_version": "102220.009"}
VOLTAGE_IN = 230.0


def mhs(ths: float) -> float:
    return round(ths * 1_000_000, 2)


def native(code: int, msg: Any, when: int, letter: str = "S") -> dict[str, Any]:
    return {"STATUS": letter, "When": when, "Code": code, "Msg": msg, "Description": NATIVE_DESCRIPTION}


def cg_error(code: int, msg: str, when: int) -> dict[str, Any]:
    return {"STATUS": status("E", code, msg, DESCRIPTION, when=when), "id": 1}


def _chip_avg(board: BoardSnapshot) -> float:
    return round(mean(board.chip_sensors_c), 2)


def _psu_fan(snap: Snapshot) -> int:
    return 0 if not snap.fans_rpm else round(max(snap.fans_rpm) * 1.4)


def _watts(miner: SimMiner, snap: Snapshot) -> int:
    return 0 if powered_off(miner) else round(snap.power_w)


def summary(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    fans = [*snap.fans_rpm, 0, 0]
    chips = [t for board in snap.boards for t in board.chip_sensors_c]
    watts = _watts(miner, snap)
    entry: dict[str, Any] = {
        "Elapsed": snap.uptime_s,
        "MHS av": mhs(snap.average_ths),
        "MHS 5s": mhs(snap.hashrate_ths),
        "MHS 1m": mhs(snap.hashrate_ths),
        "MHS 5m": mhs(snap.hashrate_ths),
        "MHS 15m": mhs(snap.hashrate_ths),
        "HS RT": mhs(snap.hashrate_ths),
        "Found Blocks": 0,
        "Getworks": snap.accepted // 2,
        "Accepted": snap.accepted,
        "Rejected": snap.rejected,
        "Hardware Errors": snap.hw_errors,
        "Utility": round(snap.accepted / max(snap.uptime_s, 1) * 60, 2),
        "Discarded": 0,
        "Stale": 0,
        "Get Failures": 0,
        "Remote Failures": 0,
        "Difficulty Accepted": float(snap.accepted * 65536),
        "Difficulty Rejected": float(snap.rejected * 65536),
        "Difficulty Stale": 0.0,
        "Best Share": 0,
        "Temperature": float(max((max(b.pcb_sensors_c) for b in snap.boards), default=0)),
        "freq_avg": 0 if powered_off(miner) else CHIP_FREQUENCY,
        "Fan Speed In": fans[0],
        "Fan Speed Out": fans[1],
        "Voltage": 1200,
        "Power": watts,
        "Power_RT": watts,
        "Device Hardware%": 0.0,
        "Device Rejected%": 0.0,
        "Pool Rejected%": round(100 * snap.rejected / max(snap.accepted + snap.rejected, 1), 4),
        "Pool Stale%": 0.0,
        "Last getwork": 0,
        "Uptime": snap.uptime_s,
        "Power Current": round(watts / 12.5, 2),
        "Power Fanspeed": _psu_fan(snap),
    }
    codes = error_codes(miner, snap)
    for index, (code, _) in enumerate(codes):
        entry[f"Error Code {index}"] = code
        entry[f"Error {index} Time"] = ""
    entry.update(
        {
            "Error Code Count": len(codes),
            "Factory Error Code Count": 0,
            "Security Mode": 0,
            "Liquid Cooling": False,
            "Hash Stable": not snap.in_transition,
            "Target Freq": CHIP_FREQUENCY,
            "Target MHS": mhs(snap.ideal_ths),
            "Env Temp": round(snap.inlet_c, 2),
            "Power Mode": MODE_NAMES[running_mode(miner)],
            "Firmware Version": f"'{firmware_version(miner)}'",
            "CB Platform": "ALLWINNER_H6OS",
            "CB Version": "V10",
            "MAC": miner.identity.mac,
            "Factory GHS": round(miner.profile.nominal_ths * 1000),
            "Power Limit": power_limit(miner, snap),
            "Power Voltage Input": VOLTAGE_IN,
            "Power Current Input": round(watts / VOLTAGE_IN, 2),
            "Chip Temp Min": float(min(chips, default=0)),
            "Chip Temp Max": float(max(chips, default=0)),
            "Chip Temp Avg": round(mean(chips), 2) if chips else 0.0,
        }
    )
    return entry


def devs(miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
    fans = [*snap.fans_rpm, 0, 0]
    total = snap.hashrate_ths
    rows = []
    for board in snap.boards:
        share = board.hashrate_ths / total if total else 1 / len(snap.boards)
        rows.append(
            {
                "ASC": board.slot,
                "Name": "SM",
                "ID": board.slot,
                "Slot": board.slot,
                "Enabled": "Y",
                "Status": "Alive",
                "Temperature": float(max(board.pcb_sensors_c)),
                "Chip Frequency": CHIP_FREQUENCY,
                "Fan Speed In": fans[0],
                "Fan Speed Out": fans[1],
                "MHS av": mhs(snap.average_ths * share),
                "MHS 5s": mhs(board.hashrate_ths),
                "MHS 1m": mhs(board.hashrate_ths),
                "MHS 5m": mhs(board.hashrate_ths),
                "MHS 15m": mhs(board.hashrate_ths),
                "Accepted": round(snap.accepted * share),
                "Rejected": round(snap.rejected * share),
                "Hardware Errors": board.hw_errors,
                "Last Share Pool": 0,
                "Device Elapsed": snap.uptime_s,
                "Upfreq Complete": 0 if snap.in_transition else 1,
                "Effective Chips": board.chips_ok,
                "PCB SN": f"{miner.identity.serial}B{board.slot}",
                "Chip Temp Min": float(min(board.chip_sensors_c)),
                "Chip Temp Max": float(max(board.chip_sensors_c)),
                "Chip Temp Avg": _chip_avg(board),
            }
        )
    return rows


def pools(snap: Snapshot) -> list[dict[str, Any]]:
    """btminer numbers its pools from 1 (M31S capture); `Last Share Time` is an epoch, 0 for never."""
    rows = []
    for index, pool in enumerate(snap.pools):
        host = pool.url.split("://")[-1].split(":")[0]
        rows.append(
            {
                "POOL": index + 1,
                "URL": pool.url,
                "Status": "Alive",
                "Priority": index,
                "Quota": 1,
                "Long Poll": "N",
                "Getworks": pool.accepted // 2,
                "Accepted": pool.accepted,
                "Rejected": pool.rejected,
                "Discarded": 0,
                "Stale": 0,
                "Get Failures": 0,
                "Remote Failures": 0,
                "User": pool.user,
                "Last Share Time": pool.last_share_ts or 0,
                "Has Stratum": True,
                "Stratum Active": pool.active,
                "Stratum URL": host if pool.active else "",
                "Has GBT": False,
            }
        )
    return rows


def devdetails(miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
    model = reported_model(miner)
    return [
        {"DEVDETAILS": b.slot, "Name": "SM", "ID": b.slot, "Driver": "bitmicro", "Kernel": "", "Model": model}
        for b in snap.boards
    ]


def report(command: str, miner: SimMiner, snap: Snapshot) -> dict[str, Any] | None:
    """A cgminer-style report, or None for a command btminer does not have."""
    when = int(snap.ts)
    if command == "summary":
        head = status("S", 11, "Summary", DESCRIPTION, when=when)
        return {"STATUS": head, "SUMMARY": [summary(miner, snap)], "id": 1}
    if command in ("devs", "edevs"):
        rows = devs(miner, snap)
        head = status("S", 9, f"{len(rows)} ASC(s)", DESCRIPTION, when=when)
        return {"STATUS": head, "DEVS": rows, "id": 1}
    if command == "pools":
        rows = pools(snap)
        head = status("S", 7, f"{len(rows)} Pool(s)", DESCRIPTION, when=when)
        return {"STATUS": head, "POOLS": rows, "id": 1}
    if command == "devdetails":
        head = status("S", 69, "Device Details", DESCRIPTION, when=when)
        return {"STATUS": head, "DEVDETAILS": devdetails(miner, snap), "id": 1}
    return None


def native_read(
    command: str, miner: SimMiner, snap: Snapshot, request: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A btminer-native read (`get_version`, `get_psu`, `status`, `get_miner_info`, `get_error_code`)."""
    when = int(snap.ts)
    fw = firmware_version(miner)
    if command == "get_version":
        return native(CODE_OK, {"api_ver": NATIVE_DESCRIPTION, "fw_ver": fw}, when)
    if command == "get_psu":
        return native(CODE_OK, {**PSU, "fan_speed": str(_psu_fan(snap))}, when)
    if command == "status":
        off = "true" if powered_off(miner) else "false"
        return native(CODE_OK, {"btmineroff": off, "Firmware Version": f"'{fw}'"}, when)
    if command == "get_miner_info":
        info = {
            "ip": miner.ip,
            "proto": "dhcp",
            "netmask": "255.0.0.0",
            "gateway": "",
            "dns": "",
            "hostname": miner.identity.hostname,
            "mac": miner.identity.mac,
            "ledstat": led_status(miner),
            "minersn": miner.identity.serial,
        }
        wanted = [f.strip() for f in str(request.get("info") or "").split(",") if f.strip()]
        return native(CODE_OK, {k: v for k, v in info.items() if not wanted or k in wanted}, when)
    if command == "get_error_code":
        codes = [{str(code): since} for code, since in error_codes(miner, snap)]
        return native(CODE_OK, {"error_code": codes}, when)
    return None
