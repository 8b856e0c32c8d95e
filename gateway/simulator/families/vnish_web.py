"""Vnish web API (`/api/v1`, xminer-api 0.1.0) as served by the simulator.

    POST /unlock {"pw"}             -> {"token"}; 401 on a wrong password
    Authorization: <token>          (also "Bearer <token>": pyasic sends that for /system/*, asic-rs always)
    GET  /info  /status             no token needed (the UI reads them before unlocking)
    GET  /summary /perf-summary /settings /autotune/presets
    POST /mining/stop|start|pause|resume|restart, /system/reboot, /find-miner, /settings

Shapes follow the S21 Pro capture (tests/fixtures/devices/vnish/s21pro_web_api_v1_*). `/status` carries
`miner_state` and `find_miner` (the locate LED; asic-rs reads it there). `/find-miner` sets the LED to
the posted {"on": bool}, and without a body toggles it (pyasic's use); either way it answers {"on": ..}.
Error bodies ({"err": ..}) are our assumption; no error reply was captured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.simulator.families import vnish_state as vs
from gateway.simulator.families.base import miner_of
from gateway.simulator.families.thirdparty import (
    coolest_chip,
    exhaust_pcb,
    hottest_chip,
    html_page,
    intake_pcb,
    issue_token,
    json_error,
    pool_quota_split,
    reboot_after_reply,
    token_valid,
)
from gateway.simulator.miner import SimMiner, Snapshot

TOKEN_LIFETIME_S = 24 * 3600


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    return header.removeprefix("Bearer ").strip() if header else None


async def _json_body(request: web.Request) -> Any:
    text = await request.text()
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class VnishWeb:
    def routes(self) -> list[web.RouteDef]:
        api = "/api/v1"
        posts = {
            "/mining/stop": self._stop,
            "/mining/pause": self._pause,
            "/mining/start": self._start,
            "/mining/resume": self._start,
            "/mining/restart": self._restart,
            "/system/reboot": self._reboot,
            "/find-miner": self._find_miner,
            "/settings": self._post_settings,
        }
        gets = {
            "/info": self._info,
            "/status": self._status,
            "/summary": self._summary,
            "/perf-summary": self._perf_summary,
            "/settings": self._settings,
            "/autotune/presets": self._presets,
        }
        return [
            web.get("/", self._index),
            web.post(f"{api}/unlock", self._unlock),
            *(web.get(api + path, handler) for path, handler in gets.items()),
            *(web.post(api + path, handler) for path, handler in posts.items()),
        ]

    def fan_duty(self, miner: SimMiner, snap: Snapshot) -> int:
        return round(100 * max(snap.fans_rpm, default=0) / miner.physics.params.fan_max_rpm)

    # --- authentication ------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        miner_of(request)
        return html_page("AnthillOS", "AnthillOS by Vnish")

    async def _unlock(self, request: web.Request) -> web.Response:
        miner = miner_of(request)
        body = await _json_body(request)
        password = body.get("pw") if isinstance(body, dict) else None
        if not isinstance(password, str) or not miner.credentials_ok(None, password):
            return json_error(401, {"err": "Wrong password"})
        token = issue_token(miner, TOKEN_LIFETIME_S, vs.STATES.get(miner).tokens)
        return web.json_response({"token": token.value})

    def _unlocked(self, request: web.Request, miner: SimMiner) -> bool:
        presented = _presented(request)
        return token_valid(vs.STATES.get(miner).tokens.get(presented or ""), presented, miner)

    def _authed(self, request: web.Request) -> SimMiner | web.Response:
        miner = miner_of(request)
        if not self._unlocked(request, miner):
            return json_error(401, {"err": "Unauthorized"})
        return miner

    # --- reads ---------------------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        miner = miner_of(request)
        uptime = miner.snapshot().uptime_s
        ident = miner.identity
        return web.json_response(
            {
                "miner": f"Antminer {ident.model}",
                "model": ident.model.replace(" ", "").lower(),
                "fw_name": "Vnish",
                "fw_version": ident.firmware_version,
                "build_name": "vnishus",
                "platform": "aml",
                "install_type": "nand",
                "build_time": "2025-12-22 19:12:30",
                "algorithm": "sha256d",
                "hr_measure": "GH/s",
                "system": {
                    "os": "GNU/Linux",
                    "miner_name": ident.model.replace(" ", "").lower(),
                    "network_status": {
                        "mac": ident.mac,
                        "dhcp": True,
                        "ip": miner.ip,
                        "netmask": "255.0.0.0",
                        "hostname": ident.hostname,
                    },
                    "uptime": f"{uptime // 3600}:{uptime % 3600 // 60:02d}",
                },
                "serial": ident.serial,
            }
        )

    async def _status(self, request: web.Request) -> web.Response:
        miner = miner_of(request)
        snap = miner.snapshot()
        return web.json_response(
            {
                "miner_state": vs.miner_state(miner, snap),
                "miner_state_time": vs.state_time(miner, snap),
                "find_miner": miner.blinking,
                "restart_required": False,
                "reboot_required": False,
                "unlocked": self._unlocked(request, miner),
            }
        )

    async def _summary(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        watts = round(snap.power_w)  # metered by the PSU: the control board's draw while stopped
        user_shares, fee_shares = pool_quota_split(snap.accepted, vs.FEE_FRACTION)
        chains = [self._chain(snap, index, w) for index, w in enumerate(vs.chain_watts(snap))]
        pools = [
            {
                "id": i,
                "url": p.url,
                "pool_type": "UserPool",
                "user": p.user,
                "status": "active" if p.active and not snap.sleeping else "working",
                "accepted": user_shares if p.active else p.accepted,
                "rejected": p.rejected,
                "stale": 0,
            }
            for i, p in enumerate(snap.pools)
        ]
        pools.append(
            {
                "id": len(pools),
                "url": "DevFee",
                "pool_type": "DevFee",
                "user": "DevFee",
                "status": "working" if snap.sleeping else "active",
                "accepted": fee_shares,
                "rejected": 0,
                "stale": 0,
            }
        )
        miner_block = {
            "miner_status": {
                "miner_state": vs.miner_state(miner, snap),
                "miner_state_time": vs.state_time(miner, snap),
            },
            "miner_type": f"Antminer {miner.identity.model} (Vnish {miner.identity.firmware_version})",
            "hr_stock": round(miner.profile.nominal_ths * 1000, 1),
            "average_hashrate": round(snap.average_ths, 5),
            "instant_hashrate": round(snap.hashrate_ths, 5),
            "hr_realtime": round(snap.hashrate_ths * 1000, 2),
            "hr_nominal": round(snap.ideal_ths * 1000, 2),
            "hr_average": round(snap.average_ths * 1000, 2),
            "pcb_temp": {
                "min": min(c["pcb_temp"]["min"] for c in chains),
                "max": max(c["pcb_temp"]["max"] for c in chains),
            },
            "chip_temp": {
                "min": min(c["chip_temp"]["min"] for c in chains),
                "max": max(c["chip_temp"]["max"] for c in chains),
            },
            "power_consumption": watts,
            "power_usage": watts,
            "power_efficiency": round(watts / snap.hashrate_ths, 6) if snap.hashrate_ths else 0.0,
            "hw_errors_percent": 0.0,
            "hr_error": 0.0,
            "hw_errors": snap.hw_errors,
            "devfee_percent": vs.FEE_FRACTION * 100,
            "devfee": round(snap.hashrate_ths * 1000 * vs.FEE_FRACTION, 4),
            "pools": pools,
            "cooling": {
                "fan_num": len(snap.fans_rpm),
                "fans": [
                    {
                        "id": i,
                        "rpm": rpm,
                        "status": "ok" if rpm else "lost",
                        "max_rpm": miner.physics.params.fan_max_rpm,
                    }
                    for i, rpm in enumerate(snap.fans_rpm)
                ],
                "settings": {"mode": {"name": "auto"}},
                "fan_duty": self.fan_duty(miner, snap),
            },
            "chains": chains,
            "found_blocks": 0,
            "best_share": 0,
            "psu": {"psu_power_metering": True},
        }
        return web.json_response({"miner": miner_block})

    def _chain(self, snap: Snapshot, index: int, watts: int) -> dict[str, Any]:
        board = snap.boards[index]
        state = "mining" if not snap.sleeping else "stopped"
        return {
            "id": index + 1,
            "frequency": 0.0 if snap.sleeping else 495.0,
            "voltage": 0 if snap.sleeping else 13000,
            "power_consumption": watts,
            "hashrate_ideal": round(board.ideal_ths * 1000, 3),
            "hashrate_rt": round(board.hashrate_ths * 1000, 3),
            "hashrate_percentage": round(100 * board.hashrate_ths / board.ideal_ths, 2)
            if board.ideal_ths
            else 0.0,
            "hr_error": 0.0,
            "hw_errors": board.hw_errors,
            "pcb_temp": {"min": intake_pcb(board), "max": exhaust_pcb(board)},
            "chip_temp": {"min": coolest_chip(board), "max": hottest_chip(board)},
            "chip_statuses": {"red": board.chips - board.chips_ok, "orange": 0, "grey": board.chips_ok},
            "status": {"state": state},
        }

    async def _perf_summary(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        return web.json_response(
            {
                "current_preset": self._preset(miner, vs.STATES.get(miner).preset),
                "preset_switcher": self._switcher(miner),
            }
        )

    def _preset(self, miner: SimMiner, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "pretty": vs.preset_label(miner, name),
            "status": "tuned",
            "modded_psu_required": False,
        }

    def _switcher(self, miner: SimMiner) -> dict[str, Any]:
        ladder = vs.preset_watts(miner)
        return {
            "enabled": False,
            "top_preset": str(ladder[-1]),
            "min_preset": str(ladder[0]),
            "decrease_temp": 75,
            "rise_temp": 55,
            "check_time": 300,
            "autochange_top_preset": False,
            "ignore_fan_speed": False,
            "power_delta": 0,
        }

    async def _settings(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        state = vs.STATES.get(miner)
        pools = [{"url": miner.current_pool_url, "user": miner.pool_user, "pass": "x"}]
        overclock = {"modded_psu": False, "preset": state.preset, "preset_switcher": self._switcher(miner)}
        return web.json_response(
            {
                "miner": {
                    "cooling": {"mode": {"name": "auto", "param": 65}, "fan_min_count": miner.profile.fans},
                    "misc": {"remain_stopped_on_reboot": True, "restart_temp": 90},
                    "overclock": overclock,
                    "pools": pools,
                },
                "network": {"hostname": miner.identity.hostname, "dhcp": True, "ipaddress": miner.ip},
                "password": None,
                "layout": None,
            }
        )

    async def _presets(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        names = [vs.STOCK_PRESET, *(str(w) for w in vs.preset_watts(miner))]
        current = vs.STATES.get(miner).preset
        presets = [
            self._preset(miner, name) | {"status": "tuned" if name == current else "untuned"}
            for name in names
        ]
        return web.json_response(presets)

    # --- controls ------------------------------------------------------------------------------------

    async def _stop(self, request: web.Request) -> web.Response:
        return self._act(request, lambda m: vs.stop(m, "stopped"))

    async def _pause(self, request: web.Request) -> web.Response:
        return self._act(request, lambda m: vs.stop(m, "paused"))

    async def _start(self, request: web.Request) -> web.Response:
        return self._act(request, vs.start)

    async def _restart(self, request: web.Request) -> web.Response:
        return self._act(request, lambda m: None)  # restarts cgminer: nothing the physics models

    async def _reboot(self, request: web.Request) -> web.Response:
        return self._act(request, reboot_after_reply)

    def _act(self, request: web.Request, action: Callable[[SimMiner], None]) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        action(miner)
        return web.json_response({})

    async def _find_miner(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        body = await _json_body(request)
        wanted = body.get("on") if isinstance(body, dict) else None
        miner.blinking = wanted if isinstance(wanted, bool) else not miner.blinking
        return web.json_response({"on": miner.blinking})

    async def _post_settings(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        body = await _json_body(request)
        overclock = body.get("miner", {}).get("overclock") if isinstance(body, dict) else None
        preset = overclock.get("preset") if isinstance(overclock, dict) else None
        if isinstance(preset, str):
            vs.apply_preset(miner, preset)  # an unknown preset is ignored, and the answer is the same
        return web.json_response({"restart_required": False, "reboot_required": False})
