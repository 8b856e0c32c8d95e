"""btminer API v3 (port 4433, length-prefixed frames added by the server) as the simulator serves it.

Shapes: the M60S `get.device.info` capture (tests/fixtures/devices/whatsminer/m60s_vk40_v3_...), and for
`get.miner.status` / `get.miner.setting` the field names of the public API doc 3.0.x as pyasic's
BTMinerV3 backend reads them (rates in TH/s, watts, degrees). Replies are `{"code", "when", "msg",
"desc"}`; codes: 0 ok, -1 fail (bad parameter), -2 invalid command, -4 no permission.

Writes (`set.*`) carry `ts`, `account` and `token` = base64(sha256(cmd + password + salt + ts))[:8]; a
token computed from another password (or the wrong_credentials fault) is "no permission". Supported:
set.miner.service start|stop|restart, set.miner.power_mode low|normal|high, set.miner.power_limit W,
set.system.led "auto"|[{color, period, duration, start}], set.system.reboot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from statistics import mean
from typing import Any

from gateway.devices.model import Mode
from gateway.devices.whatsminer_auth import v3_token
from gateway.simulator.families import whatsminer_state as btminer
from gateway.simulator.families.base import dumps
from gateway.simulator.miner import SimMiner, Snapshot

MODES = {"low": Mode.LOW, "normal": Mode.NORMAL, "high": Mode.HIGH}
SECTIONS = ("summary", "edevs", "pools")
CHIP_FREQUENCY = 600


def _reply(code: int, msg: Any, when: int, desc: str) -> bytes:
    return dumps({"code": code, "when": when, "msg": msg, "desc": desc})


def handle(miner: SimMiner, request: Mapping[str, Any]) -> bytes:
    when = int(miner.clock())
    if request.get("__invalid_json__"):
        return _reply(-1, "invalid json", when, "")
    command = str(request.get("cmd") or "")
    param = request.get("param")
    if command.startswith("set."):
        return _write(miner, command, param, request, when)
    snap = miner.snapshot()
    if command == "get.device.info":
        info = device_info(miner, snap)
        msg = {param: info[param]} if isinstance(param, str) and param in info else info
        return _reply(0, msg, when, command)
    if command == "get.miner.status":
        wanted = [part for part in str(param or "").split("+") if part in SECTIONS]
        if not wanted:
            return _reply(-1, "invalid param", when, command)
        builders = {"summary": summary, "edevs": edevs, "pools": pools}
        return _reply(0, {name: builders[name](miner, snap) for name in wanted}, when, command)
    if command == "get.miner.setting":
        return _reply(0, setting(miner, snap), when, command)
    return _reply(-2, "invalid command", when, command)


def _write(miner: SimMiner, command: str, param: Any, request: Mapping[str, Any], when: int) -> bytes:
    salt = btminer.STATES.get(miner).v3_salt
    ts, token = request.get("ts"), request.get("token")
    if not request.get("account") or ts is None or not isinstance(token, str):
        return _reply(-4, "no permission", when, command)
    if token != v3_token(command, btminer.password(miner), salt, ts):
        return _reply(-4, "no permission", when, command)
    ok = _apply(miner, command, parse_param(param))
    if ok is None:
        return _reply(-2, "invalid command", when, command)
    return _reply(0, "ok", when, command) if ok else _reply(-1, "invalid param", when, command)


def _apply(miner: SimMiner, command: str, param: Any) -> bool | None:
    """True when done, False for a bad parameter, None for a command we do not simulate."""
    if command == "set.miner.service":
        actions = {"stop": btminer.power_off, "start": btminer.power_on, "restart": btminer.reboot}
        action = actions.get(str(param))
        if action is not None:
            action(miner)
        return action is not None
    if command == "set.miner.power_mode":
        mode = MODES.get(str(param).lower())
        return mode is not None and btminer.set_power_mode(miner, mode)
    if command == "set.miner.power_limit":
        try:
            watts = int(str(param))
        except ValueError:
            return False
        return btminer.set_power_limit(miner, watts)
    if command == "set.system.led":
        if isinstance(param, str) and param == "auto":
            btminer.set_led(miner, False)
            return True
        if isinstance(param, list | dict) and param:
            btminer.set_led(miner, True)
            return True
        return False
    if command == "set.system.reboot":
        btminer.reboot(miner)
        return True
    return None


def device_info(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    identity, boards = miner.identity, snap.boards
    per_board_ghs = round(miner.profile.nominal_ths * 1000 / max(len(boards), 1))
    board_info: dict[str, str] = {}
    for board in boards:
        board_info[f"chipdata{board.slot}"] = "K8EC374-2426 BINVE6-197806A"
        board_info[f"pcbsn{board.slot}"] = f"{identity.serial}B{board.slot}"
    return {
        "miner": {
            "board-num": str(len(boards)),
            **board_info,
            "detect-hash-rate": ":".join(str(per_board_ghs) for _ in boards),
            "fast-boot": "disable",
            "hash-percent": "0",
            "miner-sn": identity.serial,
            "pool-strategy": "FAILOVER",
            "type": btminer.reported_model(miner),
            "working": "false" if btminer.powered_off(miner) else "true",
        },
        "network": {
            "dns": "",
            "gateway": "",
            "hostname": identity.hostname,
            "ip": miner.ip,
            "mac": identity.mac,
            "netmask": "255.0.0.0",
            "proto": "dhcp",
        },
        "power": {
            "fanspeed": round(max(snap.fans_rpm, default=0) * 1.4),
            "hwversion": "RT0159",
            "mode": "1",
            "model": "P221B",
            "sn": f"PSU{identity.serial}",
            "swversion": "230224.220429",
            "type": "P221B",
            "vendor": "1",
        },
        "salt": btminer.STATES.get(miner).v3_salt,
        "system": {
            "api": btminer.V3_API,
            "apiswitch": "1",
            "control-board-version": "CB6V10",
            "fwversion": btminer.firmware_version(miner),
            "ledstatus": btminer.led_status(miner),
            "platform": "H616",
        },
        "error-code": [{str(code): since} for code, since in btminer.error_codes(miner, snap)],
    }


def summary(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    chips = [t for board in snap.boards for t in board.chip_sensors_c]
    watts = 0 if btminer.powered_off(miner) else round(snap.power_w)
    rate = round(snap.hashrate_ths, 3)
    fans = [*snap.fans_rpm, 0, 0]
    return {
        "elapsed": snap.uptime_s,
        "bootup-time": snap.uptime_s,
        "freq-avg": 0 if btminer.powered_off(miner) else CHIP_FREQUENCY,
        "target-freq": CHIP_FREQUENCY,
        "factory-hash": round(miner.profile.nominal_ths, 3),
        "hash-average": round(snap.average_ths, 3),
        "hash-1min": rate,
        "hash-15min": rate,
        "hash-realtime": rate,
        "power-rate": round(watts / snap.hashrate_ths, 3) if snap.hashrate_ths else 0,
        "power-5min": watts,
        "power-realtime": watts,
        "environment-temperature": round(snap.inlet_c, 1),
        "board-temperature": [float(max(b.pcb_sensors_c)) for b in snap.boards],
        "chip-temp-min": float(min(chips, default=0)),
        "chip-temp-avg": round(mean(chips), 1) if chips else 0.0,
        "chip-temp-max": float(max(chips, default=0)),
        "power-limit": btminer.power_limit(miner, snap),
        "up-freq-finish": 0 if snap.in_transition else 1,
        "fan-speed-in": fans[0],
        "fan-speed-out": fans[1],
    }


def edevs(miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
    factory = round(miner.profile.nominal_ths / max(len(snap.boards), 1), 3)
    return [
        {
            "id": board.slot,
            "slot": board.slot,
            "hash-average": round(board.hashrate_ths, 3),
            "hash-1min": round(board.hashrate_ths, 3),
            "factory-hash": factory,
            "freq": 0 if btminer.powered_off(miner) else CHIP_FREQUENCY,
            "effective-chips": board.chips_ok,
            "chip-temp-min": float(min(board.chip_sensors_c)),
            "chip-temp-avg": round(mean(board.chip_sensors_c), 1),
            "chip-temp-max": float(max(board.chip_sensors_c)),
        }
        for board in snap.boards
    ]


def pools(miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "id": index + 1,
            "url": pool.url,
            "status": "alive",
            "account": pool.user,
            "stratum-active": pool.active,
            "reject-percent": round(100 * pool.rejected / max(pool.accepted + pool.rejected, 1), 2),
            "last-share-time": pool.last_share_ts or 0,
        }
        for index, pool in enumerate(snap.pools)
    ]


def setting(miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
    return {
        "power-mode": btminer.configured_mode(miner).value,
        "power-limit": btminer.power_limit(miner, snap),
        "upfreq-speed": 2,
        "target-freq": 0,
        "power-percent": 100,
        "fast-hash": "disable",
    }


def parse_param(raw: Any) -> Any:
    """Some clients send a structured param JSON-encoded in a string; accept both forms."""
    if isinstance(raw, str) and raw[:1] in "[{":
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
