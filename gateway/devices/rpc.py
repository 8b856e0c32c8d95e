"""The CGMiner-family TCP client (port 4028): Antminer, Avalon, BOSminer, LuxOS, Vnish, btminer v2.

The wire rules come from cgminer's api.c: one request per connection; the server writes its reply and a
terminating NUL, then closes. We stop at the NUL *or* EOF (some firmwares omit one or the other), never
read more than `max_bytes`, and give the whole exchange (connect, write, read) one hard deadline: a miner
that accepts and never answers, or trickles one byte a second, costs exactly `deadline_s` and no more.
Every failure leaves as one of the error tree's classes with the bytes we did receive attached.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError, Unreachable
from gateway.devices.jsonrepair import JsonRepairError, loads

DEFAULT_RPC_PORT = 4028
_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcLimits:
    deadline_s: float = 5.0
    max_bytes: int = 2 * 1024 * 1024


async def exchange(
    host: str, port: int, payload: bytes, *, limits: RpcLimits, until_nul: bool = True
) -> bytes:
    """Send `payload` on a fresh connection and return the reply bytes (without the NUL)."""
    received = bytearray()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limits.deadline_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            await writer.drain()
            while True:
                chunk = await reader.read(_READ_CHUNK)
                if not chunk:
                    break
                received += chunk
                if until_nul and b"\x00" in chunk:
                    del received[received.index(b"\x00") :]
                    break
                if len(received) > limits.max_bytes:
                    raise ProtocolError(
                        f"reply exceeds {limits.max_bytes} bytes", host=host, raw=bytes(received)
                    )
    except TimeoutError as err:
        got = f"after {len(received)} bytes" if received else "with no reply"
        raise Unreachable(
            f"port {port}: deadline of {limits.deadline_s:g}s exceeded {got}",
            host=host,
            raw=bytes(received),
        ) from err
    except ConnectionRefusedError as err:
        raise Unreachable(f"port {port}: connection refused", host=host) from err
    except (ConnectionError, OSError) as err:
        raise Unreachable(
            f"port {port}: {type(err).__name__}: {err}", host=host, raw=bytes(received)
        ) from err
    finally:
        if writer is not None:
            writer.close()
    if not received:
        raise Unreachable(f"port {port}: connection closed without a reply", host=host)
    return bytes(received)


def decode(raw: bytes, *, host: str | None, what: str) -> Any:
    try:
        return loads(raw)
    except JsonRepairError as err:
        raise ProtocolError(f"{what}: {err}", host=host, raw=raw) from err


@dataclass(frozen=True, slots=True)
class RpcClient:
    """One miner's RPC endpoint. Stateless: safe to share across tasks."""

    host: str
    port: int = DEFAULT_RPC_PORT
    limits: RpcLimits = field(default_factory=RpcLimits)

    async def request(self, body: Mapping[str, Any]) -> Any:
        payload = json.dumps(body, separators=(",", ":")).encode()
        raw = await exchange(self.host, self.port, payload, limits=self.limits)
        return decode(raw, host=self.host, what=str(body.get("command") or body.get("cmd")))

    async def command(self, command: str, parameter: str | None = None, **extra: Any) -> Any:
        body: dict[str, Any] = {"command": command, **extra}
        if parameter is not None:
            body["parameter"] = parameter
        return await self.request(body)

    async def multi(self, commands: Sequence[str]) -> dict[str, Any]:
        """Several parameterless report commands in one connection (`summary+stats+pools`, API >= 3.1).

        Firmwares without multi-command support answer with an error or a single section; then we fall
        back to one connection per command, in sequence (small controllers dislike parallel sockets).
        """
        if len(commands) > 1:
            try:
                reply = await self.command("+".join(commands))
            except ProtocolError:
                reply = None
            if isinstance(reply, Mapping) and all(
                isinstance(reply.get(c), list) and reply[c] for c in commands
            ):
                return {c: reply[c][0] for c in commands}
        return {c: await self.command(c) for c in commands}


async def gather_optional(
    calls: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, DeviceError]]:
    """Await several optional requests; keep what succeeded and the errors of what did not."""
    keys = list(calls)
    results = await asyncio.gather(*(calls[k] for k in keys), return_exceptions=True)
    ok: dict[str, Any] = {}
    failed: dict[str, DeviceError] = {}
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, DeviceError):
            failed[key] = result
        elif isinstance(result, BaseException):
            raise result
        else:
            ok[key] = result
    return ok, failed
