"""Discovery: address ranges, firmware classification from real captures, and a scan over a hostile
/22 that must end on time and list only real miners."""

from __future__ import annotations

import contextlib
import time

import pytest

from gateway.devices.discovery import RangeError, ScanSettings, classify, expand_ranges, scan
from gateway.devices.model import FirmwareFamily
from tests.devices.badminer import bad_miner
from tests.devices.capture import PROFILES, reply
from tests.simulator.conftest import simulator


def test_range_forms() -> None:
    assert expand_ranges(["10.0.0.0/30"]) == ["10.0.0.1", "10.0.0.2"]
    assert expand_ranges(["10.0.0.5-7"]) == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    assert expand_ranges(["10.0.0.254-10.0.1.1"]) == ["10.0.0.254", "10.0.0.255", "10.0.1.0", "10.0.1.1"]
    assert expand_ranges(["10.0.0.1", "10.0.0.1", "10.0.0.0/31"]) == ["10.0.0.1", "10.0.0.0"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("10.0.0.300", "not an address"),
        ("10.0.0.9-3", "ends before it starts"),
        ("hello", "not an address"),
        ("10.0.0.0/33", "not an address"),
        ("10.0.0.1-999", "not an address"),
        ("10.0.0.0/8", "narrow the range"),
    ],
)
def test_bad_ranges_are_refused(spec: str, message: str) -> None:
    with pytest.raises(RangeError, match=message):
        expand_ranges([spec])


@pytest.mark.parametrize(
    ("version", "devdetails", "family"),
    [
        ("antminer/s19pro_fw2022_version.json", None, FirmwareFamily.ANTMINER),
        ("antminer/s9_bmminer_version.json", None, FirmwareFamily.ANTMINER),
        ("braiins/s9_bosminer_plus_version.json", None, FirmwareFamily.BRAIINS),
        ("luxos/s19kpro_version.json", None, FirmwareFamily.LUXOS),
        ("avalon/avalon_q_version.json", "avalon/avalon_q_devdetails.json", FirmwareFamily.AVALON),
        (
            "vnish/s21pro_rpc_version_invalid_command.json",
            "vnish/s21pro_rpc_devdetails.json",
            FirmwareFamily.VNISH,
        ),
        ("whatsminer/m20s_fw20210322_get_version.json", None, FirmwareFamily.WHATSMINER),
    ],
)
def test_classify_real_replies(version: str, devdetails: str | None, family: FirmwareFamily) -> None:
    assert classify(reply(version), reply(devdetails) if devdetails else None) is family


def test_classify_unknown_is_none() -> None:
    assert classify({"STATUS": [{"STATUS": "S", "Description": "cgminer 4.9.0"}]}, None) is None
    assert classify(None, None) is None


async def test_hostile_scan_ends_on_time_and_lists_only_miners() -> None:
    """1,024 addresses: most closed, 24 hang, 24 trickle or answer garbage, 4 are real miners."""
    hosts = expand_ranges(["127.50.0.1-127.50.4.0"])
    assert len(hosts) == 1024
    hanging = hosts[100:124]
    garbage = hosts[200:224]
    settings = ScanSettings(timeout_s=1.0, concurrency=128)
    async with contextlib.AsyncExitStack() as stack:
        for ip in hanging:
            await stack.enter_async_context(bad_miner("hang", ip, 4028))
        for n, ip in enumerate(garbage):
            behaviour = ("garbage", "html", "drip", "wrong_shape", "truncated", "reset")[n % 6]
            await stack.enter_async_context(bad_miner(behaviour, ip, 4028))
        sim = await stack.enter_async_context(simulator("s19=1", "127.50.3.1", miners=4))
        started = time.monotonic()
        found = await scan(hosts, settings, PROFILES)
        elapsed = time.monotonic() - started
    # The bound the scanner guarantees (per-host hard deadline, fixed worker pool).
    assert elapsed <= (len(hosts) / settings.concurrency + 1) * settings.timeout_s
    assert [f.ip for f in found] == [m.ip for m in sim.miners]
    assert {(f.identity.make, f.identity.model) for f in found} == {("Antminer", "S19")}
