"""The simulator's control API on 127.0.0.1: list miners, read their true state, inject and clear
faults at run time. Tests and the demo drive faults through it; `hashinsight simulate fault` is a
thin client of it.

    GET    /miners                      every miner: ip, make, model, firmware, web port, faults
    GET    /miners/{ip}                 one miner's true state (what its firmware would report now)
    POST   /miners/{ip}/faults          {"kind": "overheat", "extra_c": 35}   inject or update
    DELETE /miners/{ip}/faults          clear all faults
    DELETE /miners/{ip}/faults/{kind}   clear one
    POST   /miners/{ip}/quirks          {"concatenated_objects": true, ...}   switch firmware quirks
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from gateway.simulator.faults import Fault, FaultKind
from gateway.simulator.miner import SimMiner
from gateway.simulator.servers import FleetServers

SERVERS_KEY: web.AppKey[FleetServers] = web.AppKey("servers", FleetServers)
MAX_BODY_BYTES = 16 * 1024


def describe(miner: SimMiner) -> dict[str, Any]:
    return {
        "ip": miner.ip,
        "make": miner.identity.make,
        "model": miner.identity.model,
        "firmware": miner.identity.family.value,
        "profile": miner.profile.key,
        "web_port": miner.web_port,
        "mac": miner.identity.mac,
        "serial": miner.identity.serial,
        "faults": [fault.to_dict() for fault in miner.faults.values()],
        "quirks": dataclasses.asdict(miner.quirks),
    }


def _miner(request: web.Request) -> SimMiner:
    ip = request.match_info["ip"]
    miner = request.app[SERVERS_KEY].miners.get(ip)
    if miner is None:
        raise web.HTTPNotFound(text=f"no simulated miner at {ip}\n")
    return miner


async def list_miners(request: web.Request) -> web.Response:
    return web.json_response([describe(m) for m in request.app[SERVERS_KEY].miners.values()])


async def miner_state(request: web.Request) -> web.Response:
    miner = _miner(request)
    state = dataclasses.asdict(miner.snapshot())
    state["mode"] = miner.physics.mode.value
    return web.json_response({**describe(miner), "state": state})


async def inject_fault(request: web.Request) -> web.Response:
    miner = _miner(request)
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=request.content_length or 0)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='body must be JSON: {"kind": ..., params...}\n') from None
    if not isinstance(body, dict) or "kind" not in body:
        raise web.HTTPBadRequest(text="body must be a JSON object with a 'kind'\n")
    params = {k: v for k, v in body.items() if k != "kind"}
    try:
        fault = Fault.make(str(body["kind"]), **params)
        if fault.kind is FaultKind.DEAD_BOARD and not 0 <= fault.params["slot"] < len(miner.physics.boards):
            raise ValueError(f"slot must be 0..{len(miner.physics.boards) - 1}")
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"{err}\n") from None
    miner.inject(fault)
    await request.app[SERVERS_KEY].sync_offline(miner)
    return web.json_response(describe(miner))


async def clear_faults(request: web.Request) -> web.Response:
    miner = _miner(request)
    kind_text = request.match_info.get("kind")
    kind = None
    if kind_text is not None:
        try:
            kind = FaultKind(kind_text)
        except ValueError:
            raise web.HTTPBadRequest(text=f"unknown fault {kind_text!r}\n") from None
    miner.clear(kind)
    await request.app[SERVERS_KEY].sync_offline(miner)
    return web.json_response(describe(miner))


async def set_quirks(request: web.Request) -> web.Response:
    miner = _miner(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='body must be JSON: {"quirk_name": true, ...}\n') from None
    known = {f.name for f in dataclasses.fields(miner.quirks)}
    if not isinstance(body, dict) or not body:
        raise web.HTTPBadRequest(text=f"body must be a JSON object of quirks: {', '.join(sorted(known))}\n")
    for name, value in body.items():
        if name not in known:
            raise web.HTTPBadRequest(text=f"unknown quirk {name!r}; known: {', '.join(sorted(known))}\n")
        if not isinstance(value, bool):
            raise web.HTTPBadRequest(text=f"quirk {name} must be true or false\n")
    for name, value in body.items():
        setattr(miner.quirks, name, value)
    return web.json_response(describe(miner))


def control_app(servers: FleetServers) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVERS_KEY] = servers
    app.router.add_get("/miners", list_miners)
    app.router.add_get("/miners/{ip}", miner_state)
    app.router.add_post("/miners/{ip}/faults", inject_fault)
    app.router.add_delete("/miners/{ip}/faults", clear_faults)
    app.router.add_delete("/miners/{ip}/faults/{kind}", clear_faults)
    app.router.add_post("/miners/{ip}/quirks", set_quirks)
    return app
