"""Pure parsers, one module per firmware family, each exposing `PARSER` (a `FamilyParser`)."""

from __future__ import annotations

import importlib

from gateway.devices.model import FirmwareFamily
from gateway.devices.parsers.common import FamilyParser

PARSED_FAMILIES = (
    FirmwareFamily.ANTMINER,
    FirmwareFamily.WHATSMINER,
    FirmwareFamily.AVALON,
    FirmwareFamily.BRAIINS,
    FirmwareFamily.LUXOS,
    FirmwareFamily.VNISH,
)


def parser_for(family: FirmwareFamily) -> FamilyParser:
    if family not in PARSED_FAMILIES:
        raise KeyError(f"no parser for firmware family {family.value!r}")
    module = importlib.import_module(f"gateway.devices.parsers.{family.value}")
    parser: FamilyParser = module.PARSER
    return parser
