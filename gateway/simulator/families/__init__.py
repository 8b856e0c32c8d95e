"""Firmware front-ends of the simulator, one module per family, each exposing `FRONTEND`."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from gateway.devices.model import FirmwareFamily
from gateway.simulator.families.base import Frontend

SIMULATED_FAMILIES = (
    FirmwareFamily.ANTMINER,
    FirmwareFamily.WHATSMINER,
    FirmwareFamily.AVALON,
    FirmwareFamily.BRAIINS,
    FirmwareFamily.LUXOS,
    FirmwareFamily.VNISH,
)


def frontend_for(family: FirmwareFamily) -> Frontend:
    if family not in SIMULATED_FAMILIES:
        raise KeyError(f"the simulator does not speak {family.value!r}")
    module = importlib.import_module(f"gateway.simulator.families.{family.value}")
    frontend: Frontend = module.FRONTEND
    return frontend


def frontends_for(families: Iterable[FirmwareFamily]) -> dict[FirmwareFamily, Frontend]:
    return {family: frontend_for(family) for family in families}
