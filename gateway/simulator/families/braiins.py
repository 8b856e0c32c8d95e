"""Braiins OS (BOSer / BOSminer) on Antminers: the cgminer-compatible RPC on 4028, and the REST API
(BOS 25.07+, served by braiins_rest.py) on the web port.

Reply shapes follow the captures in tests/fixtures/devices/braiins: the BOSminer+ RPC set (rates in MHS,
`Last Share Time` an epoch, the extra `fans`/`temps`/`tunerstatus` commands, multi-command) and the BOS
26.04 REST set. Numbers come from the miner's `Snapshot`. Facts beyond the captures:
* BOS reports board IDs 6, 7, 8 on the S9 (its connector numbers) and 1.. on later models; pyasic's BOS
  backend relies on exactly that split, and `tunerstatus` HashchainIndex counts from 0 on later models.
* `pause` stops hashing and the tuner's consumption estimate drops to 0 (the control board still draws a
  few watts); `resume` starts again. Braiins retunes live: a power target takes effect without a
  restart of the mining process (SimMiner.set_power_target).
* `pause`/`resume` answer PAUSE[{..}] / RESUME[{..}] sections: pyasic checks that they are non-empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily, Mode
from gateway.simulator.families.base import dumps, invalid_command, status
from gateway.simulator.families.braiins_rest import BraiinsRest, power_target_of
from gateway.simulator.families.thirdparty import exhaust_pcb, hottest_chip, mhs
from gateway.simulator.miner import SimMiner, Snapshot

BOSER_BUILD = "0.1.0-912d084c"
API_VERSION = "3.7"


DESCRIPTION = f"BOSer boser-buildroot {BOSER_BUILD}"
TEMPCTRL = {"Target": 75.0, "Hot": 90.0, "Dangerous": 95.0}


def board_id(miner: SimMiner, slot: int) -> int:
    return slot + 6 if miner.profile.key == "antminer_s9" else slot + 1


def _board_average(snap: Snapshot, index: int) -> float:
    """Per-board since-boot rate: the machine's average split like the current rates."""
    if snap.hashrate_ths <= 0:
        return 0.0
    return snap.average_ths * snap.boards[index].hashrate_ths / snap.hashrate_ths


class BraiinsFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.BRAIINS
    has_web: ClassVar[bool] = True
    has_v3: ClassVar[bool] = False

    def __init__(self) -> None:
        self.rest = BraiinsRest()

    # --- RPC -----------------------------------------------------------------------------------------

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        command = str(request.get("command", ""))
        snap = miner.snapshot()  # one instant for every section of a multi-command
        if "+" in command:
            parts: dict[str, Any] = {
                part: [self._reply(miner, part, snap)] for part in dict.fromkeys(command.split("+"))
            }
            return dumps({**parts, "id": 1})
        return dumps(self._reply(miner, command, snap))

    def _reply(self, miner: SimMiner, command: str, snap: Snapshot) -> dict[str, Any]:
        when = int(snap.ts)
        desc = DESCRIPTION
        sections: dict[str, tuple[int, str, str, Callable[[], Any]]] = {
            "version": (
                22,
                "BOSer versions",
                "VERSION",
                lambda: [{"API": API_VERSION, "BOSer": BOSER_BUILD}],
            ),
            "summary": (11, "Summary", "SUMMARY", lambda: [self._summary(snap)]),
            "devs": (9, f"{len(snap.boards)} ASC(s)", "DEVS", lambda: self._devs(miner, snap)),
            "devdetails": (69, "Device Details", "DEVDETAILS", lambda: self._devdetails(miner, snap)),
            "pools": (7, f"{len(snap.pools)} Pool(s)", "POOLS", lambda: self._pools(snap)),
            "fans": (202, f"{len(snap.fans_rpm)} Fan(s)", "FANS", lambda: self._fans(miner, snap)),
            "temps": (201, f"{len(snap.boards)} Temp(s)", "TEMPS", lambda: self._temps(miner, snap)),
            "tunerstatus": (203, "Tuner Status", "TUNERSTATUS", lambda: [self._tuner(miner, snap)]),
            "tempctrl": (200, "Temperature Control", "TEMPCTRL", lambda: [TEMPCTRL]),
        }
        if command in sections:
            code, msg, key, body = sections[command]
            return {"STATUS": status("S", code, msg, desc, when=when), key: body(), "id": 1}
        if command == "pause":
            already = snap.sleeping
            miner.set_mode(Mode.SLEEP)
            return {
                "STATUS": status("S", 204, "Pause", desc, when=when),
                "PAUSE": [{"Paused": not already}],
                "id": 1,
            }
        if command == "resume":
            already = not snap.sleeping
            miner.set_mode(Mode.NORMAL)
            return {
                "STATUS": status("S", 205, "Resume", desc, when=when),
                "RESUME": [{"Resumed": not already}],
                "id": 1,
            }
        return invalid_command(desc, when)

    def _summary(self, snap: Snapshot) -> dict[str, Any]:
        total_mh = snap.average_ths * 1e6 * snap.uptime_s
        return {
            "Accepted": snap.accepted,
            "Best Share": 0,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.0,
            "Difficulty Accepted": float(snap.accepted * 65536),
            "Difficulty Rejected": float(snap.rejected * 65536),
            "Difficulty Stale": 0.0,
            "Discarded": 0,
            "Elapsed": snap.uptime_s,
            "Found Blocks": 0,
            "Get Failures": 0,
            "Getworks": snap.accepted // 16,
            "Hardware Errors": snap.hw_errors,
            "Last getwork": int(snap.ts),
            "Local Work": 0,
            "MHS 15m": mhs(snap.average_ths),
            "MHS 1m": mhs(snap.hashrate_ths),
            "MHS 24h": mhs(snap.average_ths),
            "MHS 5m": mhs(snap.hashrate_ths),
            "MHS 5s": mhs(snap.hashrate_ths),
            "MHS av": mhs(snap.average_ths),
            "Network Blocks": 0,
            "Pool Rejected%": 0.0,
            "Pool Stale%": 0.0,
            "Rejected": snap.rejected,
            "Remote Failures": 0,
            "Stale": 0,
            "Total MH": round(total_mh, 2),
            "Utility": round(snap.accepted * 60 / snap.uptime_s, 4) if snap.uptime_s else 0.0,
            "Work Utility": 0.0,
        }

    def _devs(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        last_share = next((p.last_share_ts for p in snap.pools if p.active and p.last_share_ts), 0)
        rows = []
        for index, board in enumerate(snap.boards):
            rows.append(
                {
                    "ASC": index,
                    "Accepted": 0,
                    "Device Elapsed": snap.uptime_s,
                    "Device Hardware%": 0.0,
                    "Device Rejected%": 0.0,
                    "Enabled": "Y",
                    "Hardware Error MHS 15m": 0.0,
                    "Hardware Errors": board.hw_errors,
                    "ID": board_id(miner, board.slot),
                    "Last Share Time": last_share or 0,
                    "Last Valid Work": int(snap.ts),
                    "MHS 15m": mhs(_board_average(snap, index)),
                    "MHS 1m": mhs(board.hashrate_ths),
                    "MHS 5m": mhs(board.hashrate_ths),
                    "MHS 5s": mhs(board.hashrate_ths),
                    "MHS av": mhs(_board_average(snap, index)),
                    "Name": "",
                    "Nominal MHS": mhs(board.ideal_ths),
                    "Rejected": 0,
                    "Status": "Alive",
                    "Temperature": float(hottest_chip(board)),
                    "Total MH": round(_board_average(snap, index) * 1e6 * snap.uptime_s, 2),
                    "Utility": 0.0,
                }
            )
        return rows

    def _devdetails(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        return [
            {
                "DEVDETAILS": index,
                "Name": "",
                "ID": board_id(miner, board.slot),
                "Driver": "",
                "Kernel": "",
                "Model": f"Antminer {miner.identity.model}",
                "Device Path": "",
                "Chips": board.chips_ok,
                "Frequency": 0.0,
                "Voltage": 0.0,
            }
            for index, board in enumerate(snap.boards)
        ]

    def _pools(self, snap: Snapshot) -> list[dict[str, Any]]:
        rows = []
        for index, pool in enumerate(snap.pools):
            host = pool.url.split("://")[-1]
            rows.append(
                {
                    "Accepted": pool.accepted,
                    "AsicBoost": True,
                    "Bad Work": 0,
                    "Best Share": 65536 if pool.accepted else 0,
                    "Difficulty Accepted": float(pool.accepted * 65536),
                    "Difficulty Rejected": float(pool.rejected * 65536),
                    "Difficulty Stale": 0.0,
                    "Discarded": 0,
                    "Get Failures": 0,
                    "Getworks": pool.accepted // 16,
                    "Has GBT": False,
                    "Has Stratum": True,
                    "Has Vmask": True,
                    "Last Share Difficulty": 65536.0 if pool.accepted else 0.0,
                    "Last Share Time": pool.last_share_ts or 0,  # BOSminer: an epoch, 0 = never
                    "Long Poll": "N",
                    "POOL": index,
                    "Pool Rejected%": 0.0,
                    "Pool Stale%": 0.0,
                    "Priority": index,
                    "Proxy": "",
                    "Proxy Type": "",
                    "Quota": 1,
                    "Rejected": pool.rejected,
                    "Remote Failures": 0,
                    "Stale": 0,
                    "Status": "Alive",
                    "Stratum Active": pool.active,
                    "Stratum Difficulty": 65536.0,
                    "Stratum URL": host,
                    "URL": pool.url,
                    "User": pool.user,
                    "Work Difficulty": 65536.0,
                }
            )
        return rows

    def _fans(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        top = miner.physics.params.fan_max_rpm
        return [
            {"FAN": index, "ID": index, "RPM": rpm, "Speed": round(100 * rpm / top)}
            for index, rpm in enumerate(snap.fans_rpm)
        ]

    def _temps(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        return [
            {
                "Board": float(exhaust_pcb(board)),
                "Chip": float(hottest_chip(board)),
                "ID": board_id(miner, board.slot),
                "TEMP": index,
            }
            for index, board in enumerate(snap.boards)
        ]

    def _tuner(self, miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
        target = power_target_of(miner, snap)
        watts = 0 if snap.sleeping else round(snap.power_w)  # the tuner's estimate, 0 while paused
        stage = "Tuning individual chips" if snap.in_transition and not snap.sleeping else "Stable"
        return {
            "ApproximateChainPowerConsumption": round(watts * 0.94),
            "ApproximateMinerPowerConsumption": watts,
            "DynamicPowerScaling": "Disabled",
            "PowerLimit": target,
            "TunerChainStatus": [
                {"HashchainIndex": index, "Iteration": 0, "LoadedProfile": True, "Status": stage}
                for index, _ in enumerate(snap.boards)
            ],
            "TunerRunning": not snap.sleeping,
        }

    # --- web -----------------------------------------------------------------------------------------

    def web_routes(self) -> list[web.RouteDef]:
        return self.rest.routes()

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        raise NotImplementedError("Braiins OS has no Whatsminer API v3")


FRONTEND = BraiinsFrontend()
