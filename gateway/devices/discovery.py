"""Find miners on a network: expand address ranges, probe each host under a hard deadline, tell the
firmware family from its RPC replies, then let that family's driver identify make, model, MAC and
serial.

The per-host deadline covers the whole probe (every connection and the identify), and a fixed pool
of workers takes hosts from a queue, so a scan of N addresses with concurrency K ends within
(N / K + 1) x timeout however many hosts hang, trickle or answer garbage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from gateway.devices.driver import Credentials, DriverContext, Endpoint
from gateway.devices.errors import DeviceError
from gateway.devices.model import FirmwareFamily, MinerIdentity
from gateway.devices.profiles import ProfileCatalog
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcClient, RpcLimits

MAX_SCAN_HOSTS = 1 << 16  # a /16: larger scans are almost always a typo in the CIDR


class RangeError(ValueError):
    """An address range the scanner cannot use."""


def expand_ranges(specs: Sequence[str], *, limit: int = MAX_SCAN_HOSTS) -> list[str]:
    """'10.0.0.0/24', '10.0.0.5-40' (last octet), '10.0.0.5-10.0.1.9' or a single address -> hosts.
    Network and broadcast addresses of CIDR blocks wider than /31 are skipped; order is kept and
    duplicates dropped."""
    hosts: dict[str, None] = {}
    for spec in specs:
        for host in _expand(spec.strip()):
            hosts[host] = None
            if len(hosts) > limit:
                raise RangeError(f"more than {limit} addresses to scan; narrow the range")
    if not hosts:
        raise RangeError("no addresses to scan")
    return list(hosts)


def _expand(spec: str) -> Iterable[str]:
    try:
        if "/" in spec:
            network = ipaddress.IPv4Network(spec, strict=False)
            return (str(h) for h in (network.hosts() if network.prefixlen < 31 else network))
        if "-" in spec:
            start_text, end_text = spec.split("-", 1)
            start = ipaddress.IPv4Address(start_text)
            end = (
                ipaddress.IPv4Address(end_text)
                if "." in end_text
                else ipaddress.IPv4Address(start.packed[:3] + bytes([int(end_text)]))
            )
            if end < start:
                raise RangeError(f"{spec}: the range ends before it starts")
            return (str(ipaddress.IPv4Address(n)) for n in range(int(start), int(end) + 1))
        return [str(ipaddress.IPv4Address(spec))]
    except (ValueError, IndexError) as err:
        if isinstance(err, RangeError):
            raise
        raise RangeError(f"{spec!r} is not an address, a CIDR block or an a.b.c.d-e range") from None


def classify(version: Any, devdetails: Any) -> FirmwareFamily | None:
    """The firmware family from `version` and `devdetails` replies (either may be an error or None).

    Checked most specific first: LuxOS and Braiins run on Antminer hardware and say "Antminer" in
    their model strings, so their own markers must win over Bitmain's.
    """
    text = (json.dumps(version, default=str) + json.dumps(devdetails, default=str)).upper()
    if "LUXMINER" in text:
        return FirmwareFamily.LUXOS
    if "BOSMINER" in text or "BOSER" in text:
        return FirmwareFamily.BRAIINS
    if "VNISH" in text or "ANTHILL" in text:
        return FirmwareFamily.VNISH
    if "BTMINER" in text or "BITMICRO" in text or "WHATSMINER" in text:
        return FirmwareFamily.WHATSMINER
    if "AVALON" in text:
        return FirmwareFamily.AVALON
    if "BMMINER" in text:
        return FirmwareFamily.ANTMINER
    # Vnish 1.2.7 refuses `version` and reports Bitmain's driver under a cgminer 4.x banner; stock
    # Bitmain firmware always answers `version` with a BMMiner key.
    if '"DRIVER": "BITMAIN' in text and "CGMINER 4." in text:
        return FirmwareFamily.VNISH
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    ip: str
    family: FirmwareFamily
    identity: MinerIdentity
    endpoint: Endpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    timeout_s: float = 5.0
    concurrency: int = 64
    rpc_port: int = 4028
    web_port: int = 80
    v3_port: int = 4433
    credentials: dict[FirmwareFamily, Credentials] | None = None


async def probe(
    ip: str, settings: ScanSettings, profiles: ProfileCatalog | None, session: aiohttp.ClientSession | None
) -> Found | None:
    """Identify one host within `settings.timeout_s`; None when it is not a miner we can read."""
    endpoint = Endpoint(
        host=ip, rpc_port=settings.rpc_port, web_port=settings.web_port, v3_port=settings.v3_port
    )
    limits = RpcLimits(deadline_s=settings.timeout_s, max_bytes=256 * 1024)
    try:
        async with asyncio.timeout(settings.timeout_s):
            family = await _family_of(ip, endpoint, limits)
            if family is None:
                return None
            credentials = (settings.credentials or {}).get(family, Credentials())
            driver = make_driver(
                family,
                DriverContext(
                    miner_id=ip,
                    endpoint=endpoint,
                    credentials=credentials,
                    limits=limits,
                    profiles=profiles,
                    session=session,
                ),
            )
            identity = await driver.identify()
    except (TimeoutError, DeviceError):
        return None
    return Found(ip=ip, family=family, identity=identity, endpoint=endpoint)


async def _family_of(ip: str, endpoint: Endpoint, limits: RpcLimits) -> FirmwareFamily | None:
    rpc = RpcClient(ip, endpoint.rpc_port, limits)
    replies: tuple[Any, ...] = await asyncio.gather(
        rpc.command("version"), rpc.command("devdetails"), return_exceptions=True
    )
    answered = [r for r in replies if not isinstance(r, BaseException)]
    family = classify(*(None if isinstance(r, BaseException) else r for r in replies))
    if family is not None:
        return family
    if answered:
        # btminer answers its own commands under the "cmd" key.
        try:
            native = await rpc.request({"cmd": "get_version"})
        except DeviceError:
            return None
        return FirmwareFamily.WHATSMINER if classify(native, None) is FirmwareFamily.WHATSMINER else None
    return await _whatsminer_v3(ip, endpoint, limits)


async def _whatsminer_v3(ip: str, endpoint: Endpoint, limits: RpcLimits) -> FirmwareFamily | None:
    """Whatsminer firmware from 2024 on may keep only API v3 (4433) open."""
    from gateway.devices.whatsminer_v3 import V3Client

    try:
        await V3Client(ip, endpoint.v3_port, limits).request({"cmd": "get.device.info"})
    except DeviceError:
        return None
    return FirmwareFamily.WHATSMINER


async def scan(
    hosts: Sequence[str],
    settings: ScanSettings,
    profiles: ProfileCatalog | None,
    on_progress: Callable[[int, int, Found | None], None] | None = None,
) -> list[Found]:
    """Probe every host with `settings.concurrency` workers; results in address order."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for host in hosts:
        queue.put_nowait(host)
    found: list[Found] = []
    done = 0
    connector = aiohttp.TCPConnector(limit=settings.concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while True:
                try:
                    host = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                result = await probe(host, settings, profiles, session)
                if result is not None:
                    found.append(result)
                done += 1
                if on_progress is not None:
                    on_progress(done, len(hosts), result)

        workers = max(1, min(settings.concurrency, len(hosts)))
        await asyncio.gather(*(worker() for _ in range(workers)))
    found.sort(key=lambda f: ipaddress.IPv4Address(f.ip))
    return found
