"""Which driver class serves which firmware family. Imported lazily: a gateway that never meets a
Whatsminer never loads its AES code."""

from __future__ import annotations

import importlib

from gateway.devices.driver import BaseDriver, DriverContext
from gateway.devices.model import FirmwareFamily

_DRIVERS = {
    FirmwareFamily.ANTMINER: "gateway.devices.antminer:AntminerDriver",
    FirmwareFamily.WHATSMINER: "gateway.devices.whatsminer:WhatsminerDriver",
    FirmwareFamily.AVALON: "gateway.devices.avalon:AvalonDriver",
    FirmwareFamily.BRAIINS: "gateway.devices.braiins:BraiinsDriver",
    FirmwareFamily.LUXOS: "gateway.devices.luxos:LuxosDriver",
    FirmwareFamily.VNISH: "gateway.devices.vnish:VnishDriver",
    FirmwareFamily.PYASIC: "gateway.devices.pyasic_backend:PyasicDriver",
}


def driver_class(family: FirmwareFamily) -> type[BaseDriver]:
    module_name, class_name = _DRIVERS[family].split(":")
    cls: type[BaseDriver] = getattr(importlib.import_module(module_name), class_name)
    return cls


def make_driver(family: FirmwareFamily, ctx: DriverContext) -> BaseDriver:
    return driver_class(family)(ctx)
