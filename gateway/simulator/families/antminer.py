"""Stock Antminer (bmminer, "cgminer 1.0.0"): CGMiner RPC on 4028 and the Digest-auth CGI web API.

Reply shapes follow the real captures: the S19 Pro 2022 RPC set (old `stats` form with `chain_*N`
keys and dash-packed temperature strings), the S21 CGI set (`new_api` form, STATUS as an object), and
the S19 `get_miner_conf.cgi` (the read key `bitmain-work-mode` is a string; the write key
`miner-mode` an integer). Writes are answered `M000 OK` even when the firmware ignores them (quirk).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from aiohttp import web

from gateway.devices.model import FirmwareFamily, Mode
from gateway.simulator.families.base import dumps, invalid_command, miner_of, multi_command, status
from gateway.simulator.families.digest import require_digest
from gateway.simulator.miner import SimMiner, Snapshot

DESCRIPTION = "cgminer 1.0.0"
MINER_VERSION = "49.0.1.3"
CHAIN_SLOTS = 4  # the S17/S19 controller reports four chain slots; the fourth is empty
# get_miner_conf `bitmain-work-mode` / set_miner_conf `miner-mode`
WORK_MODE = {Mode.NORMAL: 0, Mode.SLEEP: 1, Mode.LOW: 3}
MODE_OF_WORK = {v: k for k, v in WORK_MODE.items()}


def _ghs(ths: float) -> float:
    return round(ths * 1000, 2)


def _dashed(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values)


def _acs(chips_ok: int, chips: int, sleeping: bool) -> str:
    """Chip map in groups, 'o' good, 'x' bad. A sleeping miner's chips do not answer: all 'x'
    (as on the sleeping S19 capture)."""
    marks = "x" * chips if sleeping else "o" * chips_ok + "x" * (chips - chips_ok)
    return " " + " ".join(marks[i : i + 3] for i in range(0, len(marks), 3))


class AntminerFrontend:
    family: ClassVar[FirmwareFamily] = FirmwareFamily.ANTMINER
    has_web: ClassVar[bool] = True
    has_v3: ClassVar[bool] = False

    # --- RPC -----------------------------------------------------------------------------------------

    def rpc(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        command = str(request.get("command", ""))
        if "+" in command:
            return multi_command(self, miner, request, {})
        snap = miner.snapshot()
        when = int(snap.ts)
        if command == "version":
            return dumps(
                {
                    "STATUS": status("S", 22, "CGMiner versions", DESCRIPTION, when=when),
                    "VERSION": [self._version_block(miner) | {"API": "3.1"}],
                    "id": 1,
                }
            )
        if command == "summary":
            return dumps(
                {
                    "STATUS": status("S", 11, "Summary", DESCRIPTION, when=when),
                    "SUMMARY": [self._summary(snap)],
                    "id": 1,
                }
            )
        if command == "pools":
            return dumps(
                {
                    "STATUS": status("S", 7, f"{len(snap.pools)} Pool(s)", DESCRIPTION, when=when),
                    "POOLS": self._pools(snap),
                    "id": 1,
                }
            )
        if command == "devs":
            return dumps(
                {
                    "STATUS": status("S", 9, "1 ASC(s)", DESCRIPTION, when=when),
                    "DEVS": [self._devs(snap)],
                    "id": 1,
                }
            )
        if command == "stats":
            if request.get("new_api"):
                return dumps(self._stats_new(miner, snap))
            return self._stats_old(miner, snap)
        return dumps(invalid_command(DESCRIPTION, when))

    def _version_block(self, miner: SimMiner) -> dict[str, Any]:
        return {
            "BMMiner": "1.0.0",
            "Miner": MINER_VERSION,
            "CompileTime": miner.identity.firmware_version,
            "Type": f"Antminer {miner.identity.model}",
        }

    def _summary(self, snap: Snapshot) -> dict[str, Any]:
        return {
            "Elapsed": snap.uptime_s,
            "GHS 5s": _ghs(snap.hashrate_ths),
            "GHS av": _ghs(snap.average_ths),
            "GHS 30m": _ghs(snap.average_ths),
            "Found Blocks": 0,
            "Accepted": snap.accepted,
            "Rejected": snap.rejected,
            "Hardware Errors": snap.hw_errors,
            "Stale": 0,
            "Get Failures": 0,
            "Remote Failures": 0,
            "Best Share": 0,
            "Device Hardware%": 0.0,
            "Device Rejected%": 0.0,
            "Pool Rejected%": 0.0,
            "Pool Stale%": 0.0,
            "Last getwork": int(snap.ts),
        }

    def _pools(self, snap: Snapshot) -> list[dict[str, Any]]:
        rows = []
        for index, pool in enumerate(snap.pools):
            since = int(snap.ts - pool.last_share_ts) if pool.last_share_ts else None
            rows.append(
                {
                    "POOL": index,
                    "URL": pool.url,
                    "Status": "Alive",
                    "Priority": index,
                    "Quota": 1,
                    "Long Poll": "N",
                    "Getworks": pool.accepted,
                    "Accepted": pool.accepted,
                    "Rejected": pool.rejected,
                    "Discarded": 0,
                    "Stale": 0,
                    "Get Failures": 0,
                    "Remote Failures": 0,
                    "User": pool.user,
                    # bmminer reports the time since the last share as H:MM:SS, "0" when none
                    "Last Share Time": f"{since // 3600}:{since % 3600 // 60:02d}:{since % 60:02d}"
                    if since is not None
                    else "0",
                    "Diff": "65.5K" if pool.active else "",
                    "Has Stratum": True,
                    "Stratum Active": pool.active,
                    "Stratum URL": pool.url.split("://")[-1].split(":")[0] if pool.active else "",
                }
            )
        return rows

    def _devs(self, snap: Snapshot) -> dict[str, Any]:
        # Newer stock firmware reports one pseudo device with zeros (and the typo key "Tenperature").
        return {
            "ASC": 0,
            "Name": "BTM_SOC",
            "ID": 0,
            "Enabled": "Y",
            "Status": "Alive",
            "Tenperature": 0.0,
            "MHS av": 0.0,
            "MHS 5s": 0.0,
            "Accepted": snap.accepted,
            "Rejected": snap.rejected,
            "Hardware Errors": 0,
            "Device Elapsed": snap.uptime_s,
        }

    def _stats_old(self, miner: SimMiner, snap: Snapshot) -> bytes:
        strings = miner.quirks.numbers_as_strings
        entry: dict[str, Any] = {
            "STATS": 0,
            "ID": "BTM_SOC0",
            "Elapsed": snap.uptime_s,
            "Calls": 0,
            "Wait": 0,
            "Max": 0,
            "Min": 99999999,
            "GHS 5s": f"{_ghs(snap.hashrate_ths):.2f}" if strings else _ghs(snap.hashrate_ths),
            "GHS av": _ghs(snap.average_ths),
            "rate_30m": _ghs(snap.average_ths),
            "Mode": 2,
            "miner_count": len(snap.boards),
            "frequency": 525,
            "fan_num": len(snap.fans_rpm),
        }
        for index, rpm in enumerate(snap.fans_rpm, start=1):
            entry[f"fan{index}"] = rpm
        entry["temp_num"] = len(snap.boards)
        for board in snap.boards:
            n = board.slot + 1
            entry[f"temp{n}"] = max(board.pcb_sensors_c)
            entry[f"temp2_{n}"] = max(board.chip_sensors_c)
        for n in range(1, CHAIN_SLOTS + 1):
            slot = snap.boards[n - 1] if n <= len(snap.boards) else None
            entry[f"temp_pcb{n}"] = _dashed(slot.pcb_sensors_c) if slot else "0-0-0-0"
            entry[f"temp_chip{n}"] = _dashed(slot.chip_sensors_c) if slot else "0-0-0-0"
            entry[f"temp_pic{n}"] = _dashed([t - 10 for t in slot.pcb_sensors_c]) if slot else "0-0-0-0"
        entry.update(
            {
                "total_rateideal": _ghs(snap.ideal_ths),
                "rate_unit": "GH",
                "total_freqavg": 525,
                "total_acn": sum(b.chips for b in snap.boards),
                "total rate": _ghs(snap.hashrate_ths),
                "temp_max": 0,
                "no_matching_work": snap.hw_errors,
            }
        )
        for n in range(1, CHAIN_SLOTS + 1):
            chain = snap.boards[n - 1] if n <= len(snap.boards) else None
            entry[f"chain_acn{n}"] = chain.chips if chain else 0
            entry[f"chain_acs{n}"] = _acs(chain.chips_ok, chain.chips, snap.sleeping) if chain else ""
            entry[f"chain_hw{n}"] = chain.hw_errors if chain else 0
            entry[f"chain_rate{n}"] = f"{_ghs(chain.hashrate_ths):.2f}" if chain else ""
            entry[f"freq{n}"] = 525 if chain else 0
        entry["miner_version"] = MINER_VERSION
        entry["miner_id"] = miner.identity.serial.lower()
        blocks = [json.dumps(self._version_block(miner)), json.dumps(entry)]
        # S9-era bmminer glues the two objects together without a comma (`}{`): invalid JSON.
        joined = "".join(blocks) if miner.quirks.concatenated_objects else ",".join(blocks)
        head = json.dumps(status("S", 70, "CGMiner stats", DESCRIPTION, when=int(snap.ts)))
        return f'{{"STATUS":{head},"STATS":[{joined}],"id":1}}'.encode()

    def _stats_new(self, miner: SimMiner, snap: Snapshot) -> dict[str, Any]:
        chains = [
            {
                "index": board.slot,
                "freq_avg": 490,
                "rate_ideal": _ghs(board.ideal_ths),
                "rate_real": _ghs(board.hashrate_ths),
                "asic_num": board.chips,
                "temp_pic": [t - 10 for t in board.pcb_sensors_c],
                "temp_pcb": list(board.pcb_sensors_c),
                "temp_chip": list(board.chip_sensors_c),
                "hw": board.hw_errors,
                "sn": f"{miner.identity.serial}B{board.slot}",
                "hwp": 0.0,
            }
            for board in snap.boards
        ]
        return {
            "STATUS": {"STATUS": "S", "when": int(snap.ts), "Msg": "stats", "api_version": "1.0.0"},
            "INFO": self._info(miner),
            "STATS": [
                {
                    "elapsed": snap.uptime_s,
                    "rate_5s": _ghs(snap.hashrate_ths),
                    "rate_30m": _ghs(snap.average_ths),
                    "rate_avg": _ghs(snap.average_ths),
                    "rate_ideal": _ghs(snap.ideal_ths),
                    "rate_unit": "GH/s",
                    "chain_num": len(chains),
                    "fan_num": len(snap.fans_rpm),
                    "fan": list(snap.fans_rpm),
                    "hwp_total": 0.0,
                    "miner-mode": WORK_MODE.get(snap.mode, 0),
                    "freq-level": 100,
                    "chain": chains,
                }
            ],
        }

    def _info(self, miner: SimMiner) -> dict[str, Any]:
        return {
            "miner_version": "uart_trans.1.3",
            "CompileTime": miner.identity.firmware_version,
            "type": f"Antminer {miner.identity.model}",
        }

    # --- web CGI -------------------------------------------------------------------------------------

    def web_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self._index),
            web.get("/cgi-bin/get_system_info.cgi", self._system_info),
            web.get("/cgi-bin/stats.cgi", self._stats_cgi),
            web.get("/cgi-bin/summary.cgi", self._summary_cgi),
            web.get("/cgi-bin/pools.cgi", self._pools_cgi),
            web.get("/cgi-bin/get_miner_conf.cgi", self._miner_conf),
            web.post("/cgi-bin/set_miner_conf.cgi", self._set_miner_conf),
            web.post("/cgi-bin/blink.cgi", self._blink),
            web.get("/cgi-bin/get_blink_status.cgi", self._blink_status),
            web.get("/cgi-bin/reboot.cgi", self._reboot),
            web.post("/cgi-bin/reboot.cgi", self._reboot),
        ]

    @staticmethod
    def _authed(request: web.Request) -> SimMiner:
        miner = miner_of(request)
        require_digest(request, miner)
        return miner

    async def _index(self, request: web.Request) -> web.Response:
        self._authed(request)
        return web.Response(
            text="<html><head><title>Antminer</title></head><body></body></html>", content_type="text/html"
        )

    async def _system_info(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        return web.json_response(
            {
                "minertype": f"Antminer {miner.identity.model}",
                "nettype": "DHCP",
                "netdevice": "eth0",
                "macaddr": miner.identity.mac,
                "hostname": miner.identity.hostname,
                "ipaddress": miner.ip,
                "netmask": "255.0.0.0",
                "gateway": "",
                "dnsservers": "",
                "system_mode": "GNU/Linux",
                "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT",
                "system_filesystem_version": miner.identity.firmware_version,
                "firmware_type": "Release",
                "serinum": miner.identity.serial,
            }
        )

    async def _stats_cgi(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        return web.json_response(self._stats_new(miner, miner.snapshot()))

    async def _summary_cgi(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        snap = miner.snapshot()
        return web.json_response(
            {
                "STATUS": [
                    {"STATUS": "S", "When": int(snap.ts), "Msg": "summary", "Code": 0, "Description": ""}
                ],
                "INFO": self._info(miner),
                "SUMMARY": [
                    {
                        "elapsed": snap.uptime_s,
                        "rate_5s": _ghs(snap.hashrate_ths),
                        "rate_30m": _ghs(snap.average_ths),
                        "rate_avg": _ghs(snap.average_ths),
                        "rate_ideal": _ghs(snap.ideal_ths),
                        "rate_unit": "GH/s",
                        "hw_all": snap.hw_errors,
                        "bestshare": 0,
                        "status": [
                            {"type": kind, "status": "s", "code": 0, "msg": ""}
                            for kind in ("rate", "network", "fans", "temp")
                        ],
                    }
                ],
            }
        )

    async def _pools_cgi(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        snap = miner.snapshot()
        pools = [
            {
                "index": i,
                "url": p.url,
                "user": p.user,
                "status": "Alive",
                "priority": i,
                "accepted": p.accepted,
                "rejected": p.rejected,
                "stale": 0,
            }
            for i, p in enumerate(snap.pools)
        ]
        return web.json_response(
            {
                "STATUS": {"STATUS": "S", "when": int(snap.ts), "Msg": "pools", "api_version": "1.0.0"},
                "INFO": self._info(miner),
                "POOLS": pools,
            }
        )

    async def _miner_conf(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        pools = [{"url": miner.current_pool_url, "user": miner.pool_user, "pass": "x"}]
        body = {
            "pools": pools,
            "api-listen": True,
            "api-network": True,
            "bitmain-fan-ctrl": False,
            "bitmain-fan-pwm": "100",
            "bitmain-freq-level": "100",
            "bitmain-work-mode": str(WORK_MODE.get(miner.physics.mode, 0)),  # a STRING on read
        }
        return web.Response(text="\n\n" + json.dumps(body, indent=0), content_type="text/plain")

    async def _set_miner_conf(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response({"stats": "error", "code": "M001", "msg": "Invalid JSON"})
        raw_mode = body.get("miner-mode") if isinstance(body, dict) else None
        # The firmware answers M000 whatever happened: only reading back tells the truth.
        if isinstance(raw_mode, int | str) and str(raw_mode).isdigit():
            mode = MODE_OF_WORK.get(int(raw_mode))
            if mode is not None:
                miner.set_mode(mode)
        return web.json_response({"stats": "success", "code": "M000", "msg": "OK!"})

    async def _blink(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = {}
        miner.blinking = (
            str(body.get("blink", "false")).lower() == "true" if isinstance(body, dict) else False
        )
        return web.json_response({"code": "B000" if miner.blinking else "B100", "msg": "OK!"})

    async def _blink_status(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        return web.json_response({"blink": miner.blinking})

    async def _reboot(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        miner.reboot()
        return web.Response(text="")

    def v3(self, miner: SimMiner, request: Mapping[str, Any]) -> bytes:
        raise NotImplementedError("Antminers have no Whatsminer API v3")


FRONTEND = AntminerFrontend()
