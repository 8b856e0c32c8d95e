"""The long-tail fallback: models our own backends do not know, read through pyasic.

pyasic is the only module in the gateway allowed to import it (import-linter enforces this). It is a
fallback, not the hot path, for two reasons measured in the driver benchmark: it spends an order of
magnitude more client CPU per miner than our backends, and its socket reads have no overall deadline
(a hung miner can hold a read for 100 s). So every pyasic call here runs under our own hard deadline,
and its `MinerData` is flattened at the edge into a plain dict that a pure parser turns into a Sample —
the same split every other backend has, which keeps the conversion testable without a miner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from gateway.devices.driver import BaseDriver
from gateway.devices.errors import ProtocolError, Unreachable
from gateway.devices.model import (
    BoardReading,
    FirmwareFamily,
    MinerIdentity,
    MinerStatus,
    PoolReading,
    Sample,
    Source,
)
from gateway.devices.parsers.common import (
    Capture,
    ParseContext,
    estimated_power,
    expected_hashrate,
    integer,
    number,
    temperature,
)

KEY = "pyasic"


def _ths(rate: Any) -> float | None:
    """pyasic hashrate objects convert to TH/s with `into`; plain numbers are taken as TH/s."""
    if rate is None:
        return None
    into = getattr(rate, "into", None)
    if into is not None:
        from pyasic.device.algorithm import SHA256Algo

        return float(into(SHA256Algo.unit.TH))
    return number(rate)


def flatten(data: Any) -> dict[str, Any]:
    """MinerData -> JSON-like dict with hashrates in TH/s. The only place that knows pyasic's types."""
    return {
        "make": str(data.make or "") or None,
        "model": str(data.model or "") or None,
        "firmware": str(data.firmware or "") or None,
        "fw_ver": data.fw_ver,
        "api_ver": data.api_ver,
        "mac": data.mac,
        "serial": data.serial_number,
        "hostname": data.hostname,
        "hashrate_ths": _ths(data.hashrate),
        "expected_ths": _ths(data.expected_hashrate),
        "wattage": data.wattage,
        "wattage_limit": data.wattage_limit,
        "env_temp": data.env_temp,
        "uptime": data.uptime,
        "is_mining": data.is_mining,
        "fans": [fan.speed for fan in data.fans],
        "errors": [str(error) for error in data.errors],
        "hashboards": [
            {
                "slot": board.slot,
                "hashrate_ths": _ths(board.hashrate),
                "temp": board.temp,
                "chip_temp": board.chip_temp,
                "chips": board.chips,
                "expected_chips": board.expected_chips,
                "missing": board.missing,
                "serial": board.serial_number,
            }
            for board in data.hashboards
        ],
        "pools": [
            {
                "url": str(pool.url) if pool.url else None,
                "user": pool.user,
                "active": pool.active,
                "alive": pool.alive,
                "accepted": pool.accepted,
                "rejected": pool.rejected,
            }
            for pool in data.pools
        ],
    }


class PyasicParser:
    """Flattened pyasic data -> Sample. Pure."""

    command_keys: ClassVar[Mapping[str, str]] = {KEY: "pyasic"}

    def identify(self, capture: Capture, ctx: ParseContext) -> MinerIdentity:
        data = _data(capture)
        profile = ctx.profile_for(data.get("make"), data.get("model"))
        return MinerIdentity(
            make=data.get("make") or "unknown",
            model=data.get("model"),
            firmware=FirmwareFamily.PYASIC,
            firmware_version=data.get("fw_ver"),
            api_version=data.get("api_ver"),
            mac=data.get("mac"),
            serial=data.get("serial"),
            hostname=data.get("hostname"),
            profile_key=profile.key if profile else None,
        )

    def parse(self, capture: Capture, ctx: ParseContext) -> Sample:
        data = _data(capture)
        identity = self.identify(capture, ctx)
        profile = ctx.profile_for(identity.make, identity.model)
        hashrate = number(data.get("hashrate_ths"))
        boards = tuple(
            BoardReading(
                slot=integer(board.get("slot")) or index,
                hashrate_ths=number(board.get("hashrate_ths")),
                temp_chip_c=temperature(board.get("chip_temp")),
                temp_board_c=temperature(board.get("temp")),
                chips_ok=integer(board.get("chips")),
                chips_expected=integer(board.get("expected_chips")),
                active=not board.get("missing", False),
                serial=board.get("serial"),
            )
            for index, board in enumerate(data.get("hashboards") or [])
        )
        pools = tuple(
            PoolReading(
                url=str(pool["url"]),
                user=pool.get("user"),
                active=bool(pool.get("active")),
                status="Alive" if pool.get("alive") else None,
                accepted=integer(pool.get("accepted")),
                rejected=integer(pool.get("rejected")),
            )
            for pool in data.get("pools") or []
            if pool.get("url")
        )
        power: float | None = number(data.get("wattage"))
        source: Source | None = Source.MEASURED
        if not power:
            power, source = estimated_power(profile, hashrate, None)
        expected, expected_source = expected_hashrate(number(data.get("expected_ths")), profile, None)
        active_pool = next((p for p in pools if p.active), pools[0] if pools else None)
        mining = bool(data.get("is_mining", True))
        return Sample(
            miner_id=ctx.miner_id,
            ts=ctx.ts,
            status=MinerStatus.MINING if mining and hashrate else MinerStatus.IDLE,
            hashrate_ths=hashrate,
            expected_ths=expected,
            expected_ths_source=expected_source,
            power_w=power,
            power_source=source,
            power_limit_w=number(data.get("wattage_limit")),
            boards=boards,
            fans_rpm=tuple(int(rpm) for rpm in data.get("fans") or [] if rpm is not None),
            inlet_c=temperature(data.get("env_temp")),
            pool_url=active_pool.url if active_pool else None,
            pools=pools,
            uptime_s=integer(data.get("uptime")),
            errors=tuple(data.get("errors") or ()),
            identity=identity,
        )


def _data(capture: Capture) -> Mapping[str, Any]:
    data = capture.get(KEY)
    if not isinstance(data, Mapping):
        raise ProtocolError("pyasic returned no data")
    return data


PARSER = PyasicParser()


class PyasicDriver(BaseDriver):
    """Read-only fallback. Control stays Unsupported: we only act on miners whose read-back we trust."""

    family = FirmwareFamily.PYASIC
    parser = PARSER

    async def fetch(self) -> Capture:
        import pyasic

        try:
            async with asyncio.timeout(self.ctx.limits.deadline_s):
                miner = await pyasic.get_miner(self.host)
                if miner is None:
                    raise Unreachable("pyasic could not identify a miner", host=self.host)
                data = await miner.get_data()
        except TimeoutError as err:
            raise Unreachable(
                f"pyasic: deadline of {self.ctx.limits.deadline_s:g}s exceeded", host=self.host
            ) from err
        except (OSError, ConnectionError) as err:
            raise Unreachable(f"pyasic: {type(err).__name__}: {err}", host=self.host) from err
        return {KEY: flatten(data)}
