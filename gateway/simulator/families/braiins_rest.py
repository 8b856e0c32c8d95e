"""Braiins OS REST API (`/api/v1`, BOS 25.07+), as served by the simulator.

Shapes follow the BOS 26.04 captures (tests/fixtures/devices/braiins/bos_26_04_s21pro_rest_*): values
nest their units ({"gigahash_per_second": ..}, {"degree_c": ..}, {"watt": ..}), the tuner state's oneof is
`powertargetmodestate`, `miner/details.status` is braiins.bos.v1.MinerStatus (2 normal, 3 paused).
The REST API mirrors the gRPC services of braiins/bos-plus-api (protocols.md §4):

    POST /api/v1/auth/login {"username", "password"}  -> {"token", "timeout_s"}; then the bare token
                                                         in `Authorization` (no "Bearer")
    PUT  /api/v1/performance/power-target {"watt": N}  -> {"power_target": {"watt": N}}
    PUT  /api/v1/actions/pause | resume                -> {"already_paused"} | {"already_mining"}
    PUT  /api/v1/actions/reboot                        -> {}
    GET/PUT /api/v1/actions/locate  (body: true/false) -> the locate (fault light) state, a bare bool

Errors use the gRPC-gateway shape {"code", "message", "details"} (16 = unauthenticated, 3 = invalid
argument); that shape is our assumption, no error body was captured. A changed password (the
wrong_credentials fault) refuses logins and ends sessions opened with the old one.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.devices.model import Mode
from gateway.simulator.families.base import miner_of
from gateway.simulator.families.thirdparty import (
    MinerStates,
    Token,
    exhaust_pcb,
    hottest_chip,
    html_page,
    intake_pcb,
    issue_token,
    json_error,
    power_window,
    reboot_after_reply,
    token_valid,
)
from gateway.simulator.miner import SimMiner, Snapshot

TOKEN_LIFETIME_S = 3600
BUILD = "2026-04-14-0-912d084c"
STATUS_NORMAL, STATUS_PAUSED = 2, 3
TUNER_STABLE, TUNER_TUNING = 2, 3
SHORT_WINDOWS = ("last_5s", "last_15s", "last_30s", "last_1m", "last_5m")
LONG_WINDOWS = ("last_15m", "last_30m", "last_1h", "last_24h", "since_restart")


def power_target_of(miner: SimMiner, snap: Snapshot) -> int:
    """BOS always tunes to a power target; until one is set it is the model's stock watts."""
    return round(snap.power_target_w or miner.profile.modes[Mode.NORMAL].power_w)


def _gh(ths: float) -> dict[str, float]:
    return {"gigahash_per_second": round(ths * 1_000, 6)}


def _rates(current_ths: float, average_ths: float) -> dict[str, Any]:
    return {w: _gh(current_ths) for w in SHORT_WINDOWS} | {w: _gh(average_ths) for w in LONG_WINDOWS}


def _unauthenticated(message: str) -> web.Response:
    return json_error(401, {"code": 16, "message": message, "details": []})


def _invalid(message: str) -> web.Response:
    return json_error(400, {"code": 3, "message": message, "details": []})


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except ValueError:
        return None


class BraiinsRest:
    def __init__(self) -> None:
        self._tokens: MinerStates[dict[str, Token]] = MinerStates(lambda _miner: {})

    def routes(self) -> list[web.RouteDef]:
        api = "/api/v1"
        gets = {
            "/miner/details": self._details,
            "/miner/stats": self._stats,
            "/miner/hw/hashboards": self._hashboards,
            "/miner/errors": self._errors,
            "/cooling/state": self._cooling,
            "/performance/tuner-state": self._tuner_state,
            "/pools": self._pools,
            "/configuration/miner": self._configuration,
            "/actions/locate": self._locate_get,
        }
        puts = {
            "/performance/power-target": self._set_power_target,
            "/actions/pause": self._pause,
            "/actions/resume": self._resume,
            "/actions/reboot": self._reboot,
            "/actions/locate": self._locate_put,
        }
        return [
            web.get("/", self._index),
            web.post(f"{api}/auth/login", self._login),
            *(web.get(api + path, handler) for path, handler in gets.items()),
            *(web.put(api + path, handler) for path, handler in puts.items()),
        ]

    # --- authentication ------------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        miner_of(request)
        return html_page("Braiins OS", "Braiins OS web interface")

    async def _login(self, request: web.Request) -> web.Response:
        miner = miner_of(request)
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("password"), str):
            return _invalid("expected {username, password}")
        if not miner.credentials_ok(body.get("username"), body["password"]):
            return _unauthenticated("invalid username or password")
        token = issue_token(miner, TOKEN_LIFETIME_S, self._tokens.get(miner))
        return web.json_response({"token": token.value, "timeout_s": TOKEN_LIFETIME_S})

    def _authed(self, request: web.Request) -> SimMiner | web.Response:
        miner = miner_of(request)
        presented = request.headers.get("Authorization")
        token = self._tokens.get(miner).get(presented or "")
        if not token_valid(token, presented, miner):
            return _unauthenticated("missing or expired token")
        return miner

    # --- reads ---------------------------------------------------------------------------------------

    async def _details(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        name = f"Antminer {miner.identity.model}"
        return web.json_response(
            {
                "bos_mode": 4,
                "bos_version": {
                    "bos_plus": True,
                    "current": f"{BUILD}-{miner.identity.firmware_version}-plus",
                    "major": "2022-09-13-0-11012d53-22.08-plus",
                },
                "bosminer_uptime_s": snap.uptime_s,
                "control_board_soc_family": 3,
                "hostname": miner.identity.hostname,
                "kernel_version": "4.9.113",
                "mac_address": miner.identity.mac.lower(),
                "miner_identity": {"brand": 1, "miner_model": name, "model": 0, "name": name},
                "platform": 4,
                "serial_number": miner.identity.serial,
                "status": STATUS_PAUSED if snap.sleeping else STATUS_NORMAL,
                "sticker_hashrate": _gh(miner.profile.nominal_ths),
                "system_uptime": snap.uptime_s,
                "system_uptime_s": snap.uptime_s,
                "uid": miner.identity.serial[-16:],
            }
        )

    async def _stats(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        watts = 0 if snap.sleeping else round(snap.power_w)  # the tuner's estimate: 0 while paused
        last = next((p.last_share_ts for p in snap.pools if p.active and p.last_share_ts), None)
        return web.json_response(
            {
                "miner_stats": {
                    "best_share": 0,
                    "error_hashrate": {"megahash_per_second": 0.0},
                    "found_blocks": 0,
                    "nominal_hashrate": _gh(snap.ideal_ths),
                    "real_hashrate": _rates(snap.hashrate_ths, snap.average_ths),
                },
                "pool_stats": {
                    "accepted_shares": snap.accepted,
                    "rejected_shares": snap.rejected,
                    "stale_shares": 0,
                    "last_difficulty": 65536,
                    "last_share_time": {"seconds": last, "nanos": 0} if last else None,
                    "generated_work": snap.accepted * 65536,
                },
                "power_stats": {
                    "approximated_consumption": {"watt": watts},
                    "efficiency": {
                        "joule_per_terahash": watts / snap.hashrate_ths if snap.hashrate_ths else 0.0
                    },
                },
            }
        )

    async def _hashboards(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        boards = []
        for board in snap.boards:
            fraction = board.hashrate_ths / snap.hashrate_ths if snap.hashrate_ths else 0.0
            boards.append(
                {
                    "board_name": f"{miner.identity.model} hashboard",
                    "board_temp": {"degree_c": float(exhaust_pcb(board))},
                    "chip_type": "BM",
                    "chips_count": board.chips_ok,
                    "current_frequency": {"hertz": 0.0 if snap.sleeping else 625e6},
                    "current_voltage": {"volt": 0.0 if snap.sleeping else 13.7},
                    "enabled": True,
                    "highest_chip_temp": {
                        "id": board.slot + 1,
                        "location": 1,
                        "temperature": {"degree_c": float(hottest_chip(board))},
                    },
                    "highest_outlet_temp": {"degree_c": float(exhaust_pcb(board))},
                    "id": str(board.slot + 1),
                    "lowest_inlet_temp": {"degree_c": float(intake_pcb(board))},
                    "model": f"{miner.identity.model} hashboard",
                    "serial_number": f"{miner.identity.serial}B{board.slot + 1}",
                    "stats": {
                        "best_share": 0,
                        "found_blocks": 0,
                        "nominal_hashrate": _gh(board.ideal_ths),
                        "real_hashrate": _rates(board.hashrate_ths, snap.average_ths * fraction),
                    },
                }
            )
        return web.json_response({"hashboards": boards})

    async def _errors(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        return miner if isinstance(miner, web.Response) else web.json_response({"errors": []})

    async def _cooling(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        top = miner.physics.params.fan_max_rpm
        fans = [
            {"position": i, "rpm": rpm, "target_speed_ratio": round(rpm / top, 2)}
            for i, rpm in enumerate(snap.fans_rpm)
        ]
        hottest = float(max((hottest_chip(b) for b in snap.boards), default=0))
        return web.json_response(
            {
                "fans": fans,
                "highest_temperature": {"id": None, "location": 1, "temperature": {"degree_c": hottest}},
            }
        )

    async def _tuner_state(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        target = power_target_of(miner, snap)
        tuning = snap.in_transition and not snap.sleeping
        return web.json_response(
            {
                "mode_state": {
                    "powertargetmodestate": {
                        "current_target": {"watt": target},
                        "profile": {
                            "created": None,
                            "estimated_power_consumption": {"watt": target},
                            "measured_hashrate": _gh(snap.ideal_ths),
                            "target": {"watt": target},
                        },
                    }
                },
                "overall_tuner_state": TUNER_TUNING if tuning else TUNER_STABLE,
            }
        )

    async def _pools(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        snap = miner.snapshot()
        pools = [
            {
                "active": pool.active,
                "alive": True,
                "enabled": True,
                "stats": {
                    "accepted_shares": pool.accepted,
                    "rejected_shares": pool.rejected,
                    "stale_shares": 0,
                    "last_difficulty": 65536,
                    "last_share_time": {"seconds": pool.last_share_ts, "nanos": 0}
                    if pool.last_share_ts
                    else None,
                    "generated_work": pool.accepted * 65536,
                },
                "uid": f"pool{index}",
                "url": pool.url,
                "user": pool.user,
            }
            for index, pool in enumerate(snap.pools)
        ]
        group = {"name": "Default", "pools": pools, "strategy": {"quota": {"value": 1}}, "uid": "0"}
        return web.json_response([group])

    async def _configuration(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        target = power_target_of(miner, miner.snapshot())
        tuner = {"enabled": True, "hashrate_target": None, "power_target": {"watt": target}, "tuner_mode": 1}
        return web.json_response({"pool_groups": [], "tuner": tuner})

    async def _locate_get(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        return miner if isinstance(miner, web.Response) else web.json_response(miner.blinking)

    # --- controls ------------------------------------------------------------------------------------

    async def _set_power_target(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        body = await _json_body(request)
        watt = body.get("watt") if isinstance(body, dict) else None
        if not isinstance(watt, int) or isinstance(watt, bool):
            return _invalid('expected {"watt": <integer>}')
        low, high = power_window(miner, "braiins")
        if not low <= watt <= high:
            return _invalid(f"power target {watt} W is outside the allowed range {low}-{high} W")
        miner.set_power_target(float(watt))
        return web.json_response({"power_target": {"watt": watt}})

    async def _pause(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        already = miner.physics.mode is Mode.SLEEP
        miner.set_mode(Mode.SLEEP)
        return web.json_response({"already_paused": already})

    async def _resume(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        already = miner.physics.mode is not Mode.SLEEP
        miner.set_mode(Mode.NORMAL)
        return web.json_response({"already_mining": already})

    async def _reboot(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        reboot_after_reply(miner)
        return web.json_response({})

    async def _locate_put(self, request: web.Request) -> web.Response:
        miner = self._authed(request)
        if isinstance(miner, web.Response):
            return miner
        body = await _json_body(request)
        enable = body.get("enable") if isinstance(body, dict) else body
        if not isinstance(enable, bool):
            return _invalid("expected true or false")
        miner.blinking = enable
        return web.json_response(miner.blinking)
