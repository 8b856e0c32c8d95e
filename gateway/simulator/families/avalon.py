"""Avalon (Canaan cgminer 4.11.1) front-end: the cgminer RPC on 4028 (protocols.md §5).

Reports: version, summary, pools, devs, devdetails, config, stats (the packed "MM ID0" string, see
avalon_stats), estats (the controller entry alone: pyasic reads boards, fans and temperatures from it),
litestats, and their `a+b+c` multi-command. Writes: `ascset|0,<option>,...` and `restart`.

`ascset` replies follow avalon_q_ascset_*.json: STATUS "I" Code 118 "ASC 0 set info: <detail>" for
help/softoff/softon, "S" 119 "ASC 0 set OK" for workmode/worklevel/led, "E" 120 "ASC 0 set failed:
<why>" for what the firmware refuses. The Avalon Q has no `led` option (its captured help list has
`lcd`), the A-series does (pyasic switches it with `led,1-1` / `led,1-0`); the A-series help list below
is an assumption built from the options its cgminer driver is known to take.

Privileged commands need the client in cgminer's `--api-allow W:` list. The cgminer API has no
password, so the simulator's `wrong_credentials` fault stands for a miner whose write access was taken
away from us: `ascset` and `restart` get Code 45 "Access denied to '<cmd>' command"; reads still work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families import avalon_state as controller
from gateway.simulator.families.avalon_stats import (
    DESCRIPTION,
    device_entry,
    lite_entry,
    pool_entries,
    version,
)
from gateway.simulator.families.base import dumps, invalid_command, multi_command, status
from gateway.simulator.faults import FaultKind
from gateway.simulator.miner import SimMiner, Snapshot

Q_HELP = (
    "help|voltage|fan-spd|lcd|hash-sn-read|hash-sn-write|volt-tuning|workmode|worklevel|work_mode_lvl|"
    "reboot|softon|softoff|filter-clean|facopts|faclock|activate|solo-allowed|frequency|loop|password|"
    "qr_auth|time|"
)
A_SERIES_HELP = "help|voltage|fan-spd|led|workmode|worklevel|reboot|softon|softoff|frequency|"
PRIVILEGED = frozenset({"ascset", "restart"})


def _info(detail: str, when: int) -> dict[str, Any]:
    return {"STATUS": status("I", 118, f"ASC 0 set info: {detail}", DESCRIPTION, when=when), "id": 1}


def _ok(when: int) -> dict[str, Any]:
    return {"STATUS": status("S", 119, "ASC 0 set OK", DESCRIPTION, when=when), "id": 1}


def _failed(why: str, when: int) -> dict[str, Any]:
    return {"STATUS": status("E", 120, f"ASC 0 set failed: {why}", DESCRIPTION, when=when), "id": 1}


class AvalonFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.AVALON
    has_web: ClassVar[bool] = False  # the web UI is not simulated (a page saying "Avalon" would do)
    has_v3: ClassVar[bool] = False

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        when = int(miner.clock())
        if request.get("__invalid_json__"):
            return dumps({"STATUS": status("E", 23, "Invalid JSON", DESCRIPTION, when=when), "id": 1})
        command = str(request.get("command", ""))
        if "+" in command:
            return multi_command(self, miner, request, {})
        if command in PRIVILEGED:
            if miner.has(FaultKind.WRONG_CREDENTIALS):
                denied = f"Access denied to '{command}' command"
                return dumps({"STATUS": status("E", 45, denied, DESCRIPTION, when=when), "id": 1})
            if command == "restart":
                controller.restart(miner)
                return dumps({"STATUS": "RESTART", "id": 1})
            return dumps(self._ascset(miner, str(request.get("parameter") or ""), when))
        body = self._report(command, miner, miner.snapshot(), when)
        return dumps(body if body is not None else invalid_command(DESCRIPTION, when))

    def _report(self, command: str, miner: SimMiner, snap: Snapshot, when: int) -> dict[str, Any] | None:
        if command == "version":
            head = status("S", 22, "CGMiner versions", DESCRIPTION, when=when)
            return {"STATUS": head, "VERSION": [version(miner)], "id": 1}
        if command == "summary":
            head = status("S", 11, "Summary", DESCRIPTION, when=when)
            return {"STATUS": head, "SUMMARY": [_summary(snap)], "id": 1}
        if command == "pools":
            rows = _pools(snap)
            return {
                "STATUS": status("S", 7, f"{len(rows)} Pool(s)", DESCRIPTION, when=when),
                "POOLS": rows,
                "id": 1,
            }
        if command == "devs":
            head = status("S", 9, "1 ASC(s)", DESCRIPTION, when=when)
            return {"STATUS": head, "DEVS": [_devs(snap)], "id": 1}
        if command == "devdetails":
            head = status("S", 69, "Device Details", DESCRIPTION, when=when)
            detail = {
                "DEVDETAILS": 0,
                "Name": "AVALON",
                "ID": 0,
                "Driver": "avalon",
                "Kernel": "",
                "Model": "",
            }
            return {"STATUS": head, "DEVDETAILS": [{**detail, "Device Path": ""}], "id": 1}
        if command == "config":
            head = status("S", 33, "CGMiner config", DESCRIPTION, when=when)
            return {"STATUS": head, "CONFIG": [_config(snap)], "id": 1}
        if command in ("stats", "estats", "litestats"):
            head = status("S", 70, "CGMiner stats", DESCRIPTION, when=when)
            if command == "litestats":
                entries = [lite_entry(miner, snap)]
            else:
                entries = [device_entry(miner, snap)]
                if command == "stats":
                    entries += pool_entries(snap)
            return {"STATUS": head, "STATS": entries, "id": 1}
        return None

    def _ascset(self, miner: SimMiner, parameter: str, when: int) -> dict[str, Any]:
        device, _, rest = parameter.partition(",")
        option, _, value = rest.partition(",")
        if device.strip() != "0" or not option:
            return _failed("invalid parameters", when)
        if option == "help":
            return _info(Q_HELP if controller.is_q(miner) else A_SERIES_HELP, when)
        if option in ("softoff", "softon"):
            # `1:<epoch>`: act at that moment (the captures ask for five seconds ahead).
            flag, _, at_text = value.partition(":")
            if flag != "1" or not at_text.isdigit():
                return _failed(f"invalid {option} parameter", when)
            at = int(at_text)
            schedule = controller.schedule_soft_off if option == "softoff" else controller.schedule_soft_on
            schedule(miner, at)
            return _info(f"success {option}:{at}", when)
        if option in ("workmode", "worklevel"):
            verb, _, number = value.partition(",")
            if verb != "set" or not number.isdigit():
                return _failed(f"invalid {option} parameter", when)
            if option == "worklevel":
                controller.STATES.get(miner).worklevel = int(number)
                return _ok(when)
            if controller.set_workmode(miner, int(number)):
                return _ok(when)
            return _failed(f"workmode {number} not available", when)
        if option == "led" and not controller.is_q(miner):
            if value not in ("1-1", "1-0"):
                return _failed("invalid led parameter", when)
            miner.blinking = value == "1-1"
            return _ok(when)
        return _failed(f"unknown option: {option}", when)

    def web_routes(self) -> list[web.RouteDef]:
        return []

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        raise NotImplementedError("Avalons have no Whatsminer API v3")


def _mhs(ths: float) -> float:
    return round(ths * 1_000_000, 2)


def _summary(snap: Snapshot) -> dict[str, Any]:
    return {
        "Elapsed": snap.uptime_s,
        "MHS av": _mhs(snap.average_ths),
        "MHS 5s": _mhs(snap.hashrate_ths),
        "MHS 1m": _mhs(snap.hashrate_ths),
        "MHS 5m": _mhs(snap.hashrate_ths),
        "MHS 15m": _mhs(snap.hashrate_ths),
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
        "Total MH": round(snap.average_ths * 1_000_000 * snap.uptime_s, 4),
        "Difficulty Accepted": float(snap.accepted * 65536),
        "Difficulty Rejected": float(snap.rejected * 65536),
        "Best Share": 0,
        "Device Hardware%": 0.0,
        "Device Rejected%": 0.0,
        "Pool Rejected%": round(100 * snap.rejected / max(snap.accepted + snap.rejected, 1), 4),
        "Pool Stale%": 0.0,
        "Last getwork": 0,
    }


def _since_boot(snap: Snapshot, epoch: int | None) -> int:
    """Canaan's cgminer stamps shares with a monotonic clock (seconds since boot), not an epoch."""
    return max(0, int(epoch - (snap.ts - snap.uptime_s))) if epoch else 0


def _pools(snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "POOL": index,
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
            "Password": "x",
            "Last Share Time": _since_boot(snap, pool.last_share_ts),
            "Has Stratum": True,
            "Stratum Active": pool.active,
            "Stratum URL": pool.url if pool.active else "",
            "Has GBT": False,
        }
        for index, pool in enumerate(snap.pools)
    ]


def _devs(snap: Snapshot) -> dict[str, Any]:
    active = next((p for p in snap.pools if p.active), None)
    return {
        "ASC": 0,
        "Name": "AVALON",
        "ID": 0,
        "Enabled": "Y",
        "Status": "Alive",
        "Temperature": 0.0,
        "MHS av": _mhs(snap.average_ths),
        "MHS 5s": _mhs(snap.hashrate_ths),
        "MHS 1m": _mhs(snap.hashrate_ths),
        "MHS 5m": _mhs(snap.hashrate_ths),
        "MHS 15m": _mhs(snap.hashrate_ths),
        "Accepted": snap.accepted,
        "Rejected": snap.rejected,
        "Hardware Errors": snap.hw_errors,
        "Last Share Pool": 0,
        "Last Share Time": _since_boot(snap, active.last_share_ts if active else None),
        "Device Elapsed": snap.uptime_s,
    }


def _config(snap: Snapshot) -> dict[str, Any]:
    return {
        "ASC Count": 1,
        "PGA Count": 0,
        "Pool Count": len(snap.pools),
        "Strategy": "Failover",
        "Log Interval": 5,
        "Device Code": "AVALON",
        "OS": "Linux",
        "Hotplug": "None",
    }


FRONTEND = AvalonFrontend()
