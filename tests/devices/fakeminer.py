"""A real TCP server on loopback that answers CGMiner-family RPC requests with recorded replies.

It speaks the wire rules of cgminer's api.c (one request per connection, reply + NUL, then close) so the
backends under test run their real socket code against real firmware bytes. The full simulator with
physics and faults lives in gateway/simulator; this is the minimal replayer for parser/driver tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

Reply = bytes | Callable[[Mapping[str, Any]], bytes]

INVALID_COMMAND = (
    b'{"STATUS":[{"STATUS":"E","When":0,"Code":14,"Msg":"Invalid command","Description":"x"}],"id":1}'
)


class FakeRpcMiner:
    """Serve `replies` (command -> raw bytes, or a function of the request) on 127.0.0.1.

    `multi=True` answers `a+b` multi-commands the way cgminer >= API 3.1 does; `nul=False` closes
    without the terminating NUL (some firmwares do). `requests` records every request received.
    """

    def __init__(
        self,
        replies: Mapping[str, Reply],
        *,
        host: str = "127.0.0.1",
        multi: bool = True,
        nul: bool = True,
        command_key: str = "command",
    ) -> None:
        self.replies = dict(replies)
        self.host = host
        self.multi = multi
        self.nul = nul
        self.command_key = command_key
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeRpcMiner:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _answer(self, request: Mapping[str, Any]) -> bytes:
        command = str(request.get("command") or request.get("cmd") or "")
        if "+" in command and self.multi:
            parts = {}
            for part in command.split("+"):
                body = self._answer({**request, "command": part})
                parts[part] = [json.loads(body.rstrip(b"\x00"))]
            return json.dumps({**parts, "id": 1}).encode()
        reply = self.replies.get(command)
        if reply is None:
            return INVALID_COMMAND
        return reply(request) if callable(reply) else reply

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.read(65536)
            request = json.loads(data.decode()) if data.strip().startswith(b"{") else {}
            self.requests.append(request)
            writer.write(self._answer(request) + (b"\x00" if self.nul else b""))
            await writer.drain()
        finally:
            writer.close()
