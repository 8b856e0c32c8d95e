"""Misbehaving miners on real loopback sockets: the failure modes a site actually produces.

Each behaviour is what we have seen or expect from a sick controller: it refuses, accepts and never
answers, trickles one byte a second, resets the connection mid-reply, floods garbage, or answers with
the wrong thing (HTML login pages, truncated or wrong-shaped JSON, firmware error codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

VALID_REPLY = (
    b'{"STATUS":[{"STATUS":"S","When":1,"Code":11,"Msg":"Summary","Description":"cgminer 1.0.0"}],'
    b'"SUMMARY":[{"Elapsed":10,"GHS 5s":"100000.0","GHS av":99000.0}],"id":1}'
)
TEN_MIB_GARBAGE = bytes(range(1, 256)) * (10 * 1024 * 1024 // 255 + 1)  # no NUL: the reader must cap it
BEHAVIOURS = (
    "hang",
    "drip",
    "reset",
    "garbage",
    "truncated",
    "html",
    "wrong_shape",
    "close_silently",
)


def free_port() -> int:
    """A port nobody listens on (for 'connection refused')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def whatsminer_error(code: int, message: str) -> bytes:
    """btminer's native error shape: STATUS is a bare letter with Code/Msg beside it."""
    return b'{"STATUS":"E","When":1700000000,"Code":%d,"Msg":"%s","Description":"whatsminer v1.4.0"}' % (
        code,
        message.encode(),
    )


async def _behave(behaviour: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    if behaviour == "hang":
        await asyncio.sleep(3600)
    elif behaviour == "drip":
        for byte in VALID_REPLY:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
    elif behaviour == "reset":
        writer.write(VALID_REPLY[:40])
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()
        return
    elif behaviour == "garbage":
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(TEN_MIB_GARBAGE), 1 << 20):
                writer.write(TEN_MIB_GARBAGE[start : start + (1 << 20)])
                await writer.drain()
    elif behaviour == "truncated":
        writer.write(VALID_REPLY[: len(VALID_REPLY) // 2])
    elif behaviour == "html":
        writer.write(b"<html><head><title>401 Unauthorized</title></head><body>login</body></html>")
    elif behaviour == "wrong_shape":
        writer.write(b'[1, 2, {"STATUS": "nonsense"}]\x00')
    elif behaviour == "close_silently":
        pass
    elif behaviour.startswith("raw:"):
        writer.write(behaviour[4:].encode("latin-1"))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def bad_miner(behaviour: str, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[int]:
    """Serve one behaviour; yields the port. Connections still open at exit are cut."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await _behave(behaviour, reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            writer.transport.abort()

    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
