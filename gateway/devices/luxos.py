"""LuxOS driver: everything over LUXminer's cgminer-compatible RPC (4028), in one multi-command.

Reads need no session: LUXminer only asks for `logon` (SESSION[{SessionID}]) before privileged commands
(curtail, profileset, rebootdevice), which arrive with the control methods (protocols.md §6).
"""

from __future__ import annotations

from gateway.devices.driver import BaseDriver
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.common import Capture
from gateway.devices.parsers.luxos import COMMANDS, PARSER

RPC_READ = COMMANDS
RPC_IDENTITY = ("version", "config", "stats")


class LuxosDriver(BaseDriver):
    family = FirmwareFamily.LUXOS
    parser = PARSER

    async def fetch(self) -> Capture:
        return await self.rpc.multi(list(RPC_READ))

    async def fetch_identity(self) -> Capture:
        return await self.rpc.multi(list(RPC_IDENTITY))
