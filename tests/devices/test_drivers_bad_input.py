"""Every backend, against every misbehaving peer: only the error tree escapes, within the deadline.

And the repair+parse path under fuzzing: real captures, cut and corrupted at the byte level or with
their values swapped for values of other types, go through each family's parser. The parser may
reject them only with a device error; any other exception is a parser bug.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint, run_parser
from gateway.devices.errors import DeviceError
from gateway.devices.jsonrepair import JsonRepairError, loads
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers import PARSED_FAMILIES, parser_for
from gateway.devices.rpc import RpcLimits
from tests.devices.badminer import BEHAVIOURS, bad_miner, free_port
from tests.devices.capture import FIXTURES, PROFILES, ctx

DRIVERS = {
    FirmwareFamily.ANTMINER: "gateway.devices.antminer:AntminerDriver",
    FirmwareFamily.WHATSMINER: "gateway.devices.whatsminer:WhatsminerDriver",
    FirmwareFamily.AVALON: "gateway.devices.avalon:AvalonDriver",
    FirmwareFamily.BRAIINS: "gateway.devices.braiins:BraiinsDriver",
    FirmwareFamily.LUXOS: "gateway.devices.luxos:LuxosDriver",
    FirmwareFamily.VNISH: "gateway.devices.vnish:VnishDriver",
}
DEADLINE_S = 1.0
# Not a performance bound: without deadlines these peers hold a client for minutes. A backend may try
# a few transports in turn (RPC, then web, then API v3), each with its own deadline.
PROOF_BOUND_S = DEADLINE_S * 12


def driver_class(family: FirmwareFamily) -> type[BaseDriver]:
    module, name = DRIVERS[family].split(":")
    cls: type[BaseDriver] = getattr(importlib.import_module(module), name)
    return cls


def make_driver(family: FirmwareFamily, port: int) -> BaseDriver:
    endpoint = Endpoint(host="127.0.0.1", rpc_port=port, web_port=port, v3_port=port)
    context = DriverContext(
        miner_id="bad",
        endpoint=endpoint,
        credentials=Credentials(username="root", password="root"),
        limits=RpcLimits(deadline_s=DEADLINE_S),
        profiles=PROFILES,
    )
    return driver_class(family)(context)


@pytest.mark.parametrize("family", list(DRIVERS))
async def test_refused_everywhere(family: FirmwareFamily) -> None:
    with pytest.raises(DeviceError):
        await make_driver(family, free_port()).read()


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("family", list(DRIVERS))
async def test_only_the_error_tree_escapes(family: FirmwareFamily, behaviour: str) -> None:
    async with bad_miner(behaviour) as port:
        driver = make_driver(family, port)
        started = time.monotonic()
        for call in (driver.read, driver.identify):
            with pytest.raises(DeviceError) as caught:
                await call()
            assert len(caught.value.raw) <= 4096
        assert time.monotonic() - started < 2 * PROOF_BOUND_S


# --- fuzzing the repair + parse path ---------------------------------------------------------------


def _capture_sets() -> list[tuple[FirmwareFamily, str, bytes]]:
    """(family, capture key, raw bytes) for every fixture whose file name maps to a command key."""
    from gateway.devices.capture_files import command_for_file

    found = []
    for family in PARSED_FAMILIES:
        keys = dict(parser_for(family).command_keys)
        for path in sorted((FIXTURES / family.value).glob("*.json")):
            key = command_for_file(path, keys)
            if key is not None:
                found.append((family, key, path.read_bytes()))
    return found


CAPTURES = _capture_sets()
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


def _mutate(value: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace some values anywhere in a decoded reply by arbitrary JSON (wrong types, nulls...)."""
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(any_json)
    if isinstance(value, dict) and depth < 6:
        return {k: _mutate(v, data, depth + 1) for k, v in value.items() if data.draw(st.integers(0, 15))}
    if isinstance(value, list) and depth < 6:
        return [_mutate(v, data, depth + 1) for v in value]
    return value


def _parse_only_device_errors(family: FirmwareFamily, capture: dict[str, Any]) -> None:
    parser = parser_for(family)
    for parse in (parser.parse, parser.identify):
        with contextlib.suppress(DeviceError):
            parse(capture, ctx())


@given(st.sampled_from(CAPTURES), st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_fuzz_values_swapped_in_real_captures(
    case: tuple[FirmwareFamily, str, bytes], data: st.DataObject
) -> None:
    family, key, raw = case
    _parse_only_device_errors(family, {key: _mutate(loads(raw), data)})


@given(st.sampled_from(CAPTURES), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_fuzz_bytes_of_real_captures(case: tuple[FirmwareFamily, str, bytes], data: st.DataObject) -> None:
    family, key, raw = case
    cut = data.draw(st.integers(0, len(raw)))
    resume = data.draw(st.integers(0, len(raw)))
    mutated = raw[:cut] + data.draw(st.binary(max_size=8)) + raw[resume:]
    try:
        decoded = loads(mutated)
    except JsonRepairError:
        return
    _parse_only_device_errors(family, {key: decoded})
    with contextlib.suppress(DeviceError):
        run_parser(parser_for(family).parse, {key: decoded}, ctx(), host="fuzz")
