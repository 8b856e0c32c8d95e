"""Avalon (Canaan cgminer 4.11.1) backend: A10/A11/A12 series and the Avalon Q.

What to fetch: `summary+stats+pools+version` as one cgminer multi-command (cgminer >= API 3.1; the
client falls back to one connection per command when a firmware refuses it). `stats` carries the MM
string with nearly everything; the others fill in shares, pools and identity, and any of them may fail
on its own (an A-series controller that answers `version` with "invalid command" still gets a sample).
Identity needs `version` (product, MAC, firmware) and `stats` (the MM `Ver`, which names the model on
firmwares whose `version` does not).

Control (`ascset 0,softoff/softon`, `workmode`, `worklevel`; reboot = `restart`) is a later step; the
reply shapes are already read by `parsers.avalon_control.interpret_ascset`.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.devices.driver import BaseDriver
from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.avalon import PARSER
from gateway.devices.parsers.common import Capture, FamilyParser

_READ = ("summary", "stats", "pools", "version")
_IDENTIFY = ("version", "stats")


class AvalonDriver(BaseDriver):
    family: ClassVar[FirmwareFamily] = FirmwareFamily.AVALON
    parser: ClassVar[FamilyParser] = PARSER

    async def fetch(self) -> Capture:
        return await self.rpc.multi(_READ)

    async def fetch_identity(self) -> Capture:
        return await self.rpc.multi(_IDENTIFY)
