"""Whatsminer API v3 transport (btminer firmware from mid-2024, TCP 4433).

Framing (apidoc.whatsminer.com, "TCP Data Framing"): each message is a 4-byte little-endian length
followed by that many bytes of JSON, in both directions; four zero bytes are a heartbeat. The guarantees
are rpc.exchange's: one hard deadline over connect + write + read, a size cap checked against the length
prefix *before* reading the body (a corrupt prefix must not make us allocate or wait for 4 GiB), every
failure translated into the error tree with the bytes received kept for the technician.

This module only moves bytes and decodes JSON; what a reply's `code` means is the parser's business
(parsers.whatsminer_common.check_v3), so the raw reply still reaches the capture when the miner refuses.
Privileged `set.*` commands go through `V3Client.write`: ts + account + token, the token being
base64(sha256(cmd + password + salt + ts))[:8] with the salt from `get.device.info` (whatsminer_auth).
The commands we send carry no secret parameter, so none is AES-encrypted (the doc encrypts only the
params of a few commands such as pool and password changes).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.devices.errors import ProtocolError, Unreachable
from gateway.devices.parsers.whatsminer_common import check_v3
from gateway.devices.rpc import RpcLimits, decode
from gateway.devices.whatsminer_auth import v3_token

DEFAULT_V3_PORT = 4433
V3_ACCOUNT = "super"  # the API's administrator account (others: user1..user3, read-mostly)
_LENGTH = struct.Struct("<I")
_READ_CHUNK = 65536


async def exchange_v3(host: str, port: int, payload: bytes, *, limits: RpcLimits) -> bytes:
    """Send one framed request on a fresh connection; return the body of the first non-heartbeat frame."""
    received = bytearray()  # everything read so far, prefixes included, for diagnostics
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limits.deadline_s):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(_LENGTH.pack(len(payload)) + payload)
            await writer.drain()
            while True:
                prefix = await _read_exactly(reader, _LENGTH.size, received, host=host, port=port)
                (length,) = _LENGTH.unpack(prefix)
                if length == 0:  # heartbeat frame
                    continue
                if length > limits.max_bytes:
                    raise ProtocolError(
                        f"port {port}: v3 frame announces {length} bytes, over the {limits.max_bytes} cap",
                        host=host,
                        raw=bytes(received),
                    )
                return await _read_exactly(reader, length, received, host=host, port=port)
    except TimeoutError as err:
        got = f"after {len(received)} bytes" if received else "with no reply"
        raise Unreachable(
            f"port {port}: deadline of {limits.deadline_s:g}s exceeded {got}", host=host, raw=bytes(received)
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


async def _read_exactly(
    reader: asyncio.StreamReader, size: int, received: bytearray, *, host: str, port: int
) -> bytes:
    """`size` bytes, appended to `received` as they arrive (so a deadline still leaves them for the
    technician). EOF before anything at all is a silent close; EOF mid-frame is a truncated reply."""
    data = bytearray()
    while len(data) < size:
        chunk = await reader.read(min(_READ_CHUNK, size - len(data)))
        if not chunk:
            if not received:
                raise Unreachable(f"port {port}: connection closed without a reply", host=host)
            raise ProtocolError(
                f"port {port}: v3 reply truncated: connection closed after {len(data)} of {size} bytes",
                host=host,
                raw=bytes(received),
            )
        data += chunk
        received += chunk
    return bytes(data)


@dataclass(frozen=True, slots=True)
class V3Client:
    """One miner's v3 endpoint. Stateless: one connection per request, like the v2 client."""

    host: str
    port: int = DEFAULT_V3_PORT
    limits: RpcLimits = field(default_factory=RpcLimits)

    async def request(self, body: Mapping[str, Any]) -> Any:
        """Send a read command (`{"cmd": "get.device.info"}`) and return the decoded reply as is."""
        payload = json.dumps(body, separators=(",", ":")).encode()
        raw = await exchange_v3(self.host, self.port, payload, limits=self.limits)
        return decode(raw, host=self.host, what=f"v3 {body.get('cmd')}")

    async def miner_status(self, sections: Sequence[str]) -> dict[str, Any]:
        """`get.miner.status` for several sections, keyed `v3:get.miner.status.<section>`.

        The API accepts `"param": "summary+edevs+pools"` and answers with all sections in one `msg`; that
        reply is split so each key holds a reply of its own shape. A firmware that refuses the combined
        form (or leaves a section out) gets one request per missing section.
        """
        captured: dict[str, Any] = {}
        combined = await self.request({"cmd": "get.miner.status", "param": "+".join(sections)})
        msg = combined.get("msg") if isinstance(combined, Mapping) else None
        ok = isinstance(combined, Mapping) and combined.get("code") == 0 and isinstance(msg, Mapping)
        for name in sections:
            if ok and isinstance(msg, Mapping) and name in msg:
                captured[f"v3:get.miner.status.{name}"] = {**combined, "msg": {name: msg[name]}}
            else:
                captured[f"v3:get.miner.status.{name}"] = await self.request(
                    {"cmd": "get.miner.status", "param": name}
                )
        return captured

    async def salt(self) -> str:
        """The miner's token salt (`get.device.info` with param "salt")."""
        msg = check_v3(
            await self.request({"cmd": "get.device.info", "param": "salt"}), "get.device.info salt"
        )
        salt = msg.get("salt")
        if not isinstance(salt, str) or not salt:
            raise ProtocolError("get.device.info salt: reply has no 'salt'", host=self.host)
        return salt

    async def write(
        self, command: str, param: Any = None, *, password: str, ts: int, account: str = V3_ACCOUNT
    ) -> Any:
        """A signed `set.*` command; returns the decoded reply as is (check it with check_v3_write).
        The salt is fetched for every write: it is one short exchange, and a cached one would go stale
        when the miner is reset."""
        salt = await self.salt()
        body: dict[str, Any] = {
            "cmd": command,
            "ts": ts,
            "account": account,
            "token": v3_token(command, password, salt, ts),
        }
        if param is not None:
            body["param"] = param
        return await self.request(body)
