"""Vnish (AnthillOS) on Antminers: its cgminer 4.11.1 RPC on 4028 and the xminer web API (vnish_web.py).

Reply shapes follow the S21 Pro capture (tests/fixtures/devices/vnish, Vnish 1.2.7): SUMMARY, STATS and
POOLS carry no `id`; STATS `GHS 5s` is a string while SUMMARY's is a number; STATS per-chain keys are
numbered from 1 (`chain_rateN` real-time GH/s, `chain_rateidealN`, `chain_consumptionN` W,
`chain_acnN`, `temp_chipN`/`temp_pcbN` dash-packed, `temp_sensN` "m-m-m-m" for missing sensors);
`version` answers STATUS E, Code 0, "Invalid command" (so does any unknown command here). POOLS lists
the firmware's DevFee pool beside the user's. Multi-command (`a+b`) works as on any cgminer >= 3.1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families import vnish_state as vs
from gateway.simulator.families.base import dumps, status
from gateway.simulator.families.thirdparty import (
    dashed,
    exhaust_pcb,
    ghs,
    hms,
    hottest_chip,
    pool_quota_split,
)
from gateway.simulator.families.vnish_web import VnishWeb
from gateway.simulator.miner import SimMiner, Snapshot

DESCRIPTION = "cgminer 4.11.1"
COMPILE_TIME = "2025-12-22 19:12:30"


def compact_model(miner: SimMiner) -> str:
    """ "S21 Pro" -> "S21PRO", as Vnish names the device (DEVDETAILS Name "BTM_S21PRO")."""
    return miner.identity.model.replace(" ", "").replace("+", "PLUS").upper()


class VnishFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.VNISH
    has_web: ClassVar[bool] = True
    has_v3: ClassVar[bool] = False

    def __init__(self) -> None:
        self.web = VnishWeb()

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        command = str(request.get("command", ""))
        snap = miner.snapshot()  # one instant for every section of a multi-command
        if "+" in command:
            parts = {part: [self._reply(miner, part, snap)] for part in dict.fromkeys(command.split("+"))}
            return dumps({**parts, "id": 1})
        return dumps(self._reply(miner, command, snap))

    def _reply(self, miner: SimMiner, command: str, snap: Snapshot) -> dict[str, Any]:
        when = int(snap.ts)
        if command == "summary":
            return {
                "STATUS": status("S", 11, "Summary", DESCRIPTION, when=when),
                "SUMMARY": [self._summary(snap)],
            }
        if command == "stats":
            body = [self._stats_header(miner), self._stats(miner, snap)]
            return {"STATUS": status("S", 70, "CGMiner stats", DESCRIPTION, when=when), "STATS": body}
        if command == "pools":
            pools = self._pools(miner, snap)
            return {"STATUS": status("S", 7, f"{len(pools)} Pool(s)", DESCRIPTION, when=when), "POOLS": pools}
        if command == "devdetails":
            details = {
                "DEVDETAILS": 0,
                "Name": f"BTM_{compact_model(miner)}",
                "ID": 0,
                "Driver": f"bitmain_{compact_model(miner).lower()}_drv",
                "Kernel": "",
                "Model": "",
                "Device Path": "",
            }
            return {
                "STATUS": status("S", 69, "Device Details", DESCRIPTION, when=when),
                "DEVDETAILS": [details],
                "id": 1,
            }
        # Vnish 1.2.7 answers even `version` this way: Code 0, not cgminer's 14, and no `id`.
        return {"STATUS": status("E", 0, "Invalid command", DESCRIPTION, when=when)}

    def _summary(self, snap: Snapshot) -> dict[str, Any]:
        return {
            "Elapsed": snap.uptime_s,
            "Device Hardware%": 0.0,
            "GHS 5s": ghs(snap.hashrate_ths),
            "GHS av": ghs(snap.average_ths),
            "GHS 30m": ghs(snap.average_ths),
            "Stale": 0,
            "Found Blocks": 0,
            "Getworks": 0,
            "Accepted": snap.accepted,
            "Rejected": snap.rejected,
            "Hardware Errors": snap.hw_errors,
            "Utility": 0.0,
            "Discarded": 0,
            "Get Failures": 0,
            "Local Work": 0,
            "Remote Failures": 0,
            "Network Blocks": 0,
            "Total MH": 0,
            "Work Utility": 0.0,
            "Difficulty Accepted": float(snap.accepted * 65536),
            "Difficulty Rejected": float(snap.rejected * 65536),
            "Difficulty Stale": 0.0,
            "Best Share": 0,
            "Device Rejected%": 0.0,
            "Pool Rejected%": 0.0,
            "Pool Stale%": 0.0,
            "Last getwork": 0,
            "Fee Percent": vs.FEE_FRACTION * 100,
        }

    def _stats_header(self, miner: SimMiner) -> dict[str, Any]:
        fw = miner.identity.firmware_version
        return {
            "Type": f"Antminer {miner.identity.model} (Vnish {fw})",
            "Miner": "0.0.0",
            "Cgminer": fw,
            "CompileTime": COMPILE_TIME,
        }

    def _stats(self, miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Elapsed": snap.uptime_s,
            "GHS 5s": f"{ghs(snap.hashrate_ths):.2f}",  # a string here, a number in SUMMARY
            "GHS av": ghs(snap.average_ths),
        }
        boards = list(enumerate(snap.boards, start=1))
        watts = vs.chain_watts(snap)
        for n, _ in boards:
            entry[f"temp_sens{n}"] = "m-m-m-m"
        for n, board in boards:
            entry[f"temp{n}"] = exhaust_pcb(board)
        for n, board in boards:
            entry[f"temp2_{n}"] = hottest_chip(board)
        for n, board in boards:
            entry[f"temp3_{n}"] = hottest_chip(board)
        for n, board in boards:
            entry[f"temp_chip{n}"] = dashed(vs.packed(board.chip_sensors_c))
        for n, board in boards:
            entry[f"temp_pcb{n}"] = dashed(vs.packed(board.pcb_sensors_c))
        for n, _ in boards:
            entry[f"chain_consumption{n}"] = watts[n - 1]
        for n, board in boards:
            entry[f"chain_hw{n}"] = board.hw_errors
        entry |= {"fan_num": len(snap.fans_rpm), "fan_mode": 0, "fan_pwm": self.web.fan_duty(miner, snap)}
        for n, rpm in enumerate(snap.fans_rpm, start=1):
            entry[f"fan{n}"] = rpm
        for n, board in boards:
            entry[f"chain_rateideal{n}"] = round(board.ideal_ths * 1000, 3)
        for n, board in boards:
            entry[f"chain_rate{n}"] = round(board.hashrate_ths * 1000, 3)
        for n, _ in boards:
            entry[f"freq_avg{n}"] = 0.0 if snap.sleeping else 495.0
        for n, _ in boards:
            entry[f"chain_vol{n}"] = 0 if snap.sleeping else 13000
        state = vs.miner_state(miner, snap)
        entry |= {
            "state": state,
            "total_rate": ghs(snap.hashrate_ths),
            "total_rateideal": ghs(snap.ideal_ths),
            "total_acn": sum(b.chips_ok for b in snap.boards),
        }
        for n, _ in boards:
            entry[f"chain_state{n}"] = "mining" if state in ("mining", "auto-tuning") else state
        for n, board in boards:
            entry[f"chain_fault{n}"] = "" if board.chips_ok else "no chips found"
        for n, board in boards:
            entry[f"chain_acn{n}"] = board.chips_ok
        return entry

    def _pools(self, miner: SimMiner, snap: Snapshot) -> list[dict[str, Any]]:
        rows = []
        user_shares, fee_shares = pool_quota_split(snap.accepted, vs.FEE_FRACTION)
        for index, pool in enumerate(snap.pools):
            accepted = user_shares if pool.active else pool.accepted
            ago = snap.ts - pool.last_share_ts if pool.last_share_ts else None
            rows.append(
                {
                    "POOL": index,
                    "URL": pool.url,
                    "Type": 0,
                    "User": pool.user,
                    "Status": "Alive",
                    "Diff": "65.5K" if pool.active else "",
                    "Accepted": accepted,
                    "Rejected": pool.rejected,
                    "Stale": 0,
                    "Last Share Difficulty": 65536.0 if accepted else 0.0,
                    "Last Share Time": hms(ago, two_digit_hours=False) if ago is not None else "0",
                    "Stratum Active": pool.active,
                    "Has Vmask": True,
                    "Difficulty Accepted": float(accepted * 65536),
                    "Difficulty Rejected": float(pool.rejected * 65536),
                    "Difficulty Stale": 0.0,
                }
            )
        fee_ago = hms(7, two_digit_hours=False) if fee_shares and not snap.sleeping else "0"
        rows.append(
            {
                "POOL": len(rows),
                "URL": "DevFee",
                "Type": 1,
                "User": "DevFee",
                "Status": "Alive",
                "Diff": "16.4K",
                "Accepted": fee_shares,
                "Rejected": 0,
                "Stale": 0,
                "Last Share Difficulty": 16384.0 if fee_shares else 0.0,
                "Last Share Time": fee_ago,
                "Stratum Active": not snap.sleeping,
                "Has Vmask": True,
                "Difficulty Accepted": float(fee_shares * 16384),
                "Difficulty Rejected": 0.0,
                "Difficulty Stale": 0.0,
            }
        )
        return rows

    def web_routes(self) -> list[web.RouteDef]:
        return self.web.routes()

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        raise NotImplementedError("Vnish has no Whatsminer API v3")


FRONTEND = VnishFrontend()
