"""One-shot application of targets outside the gateway's loop (`hashinsight curtail apply`): parse a
targets file, read every inventory miner once, and run one executor tick (dry run by default).

The running gateway calls `Executor.tick` each cycle with the poller's samples; this module exists so an
operator can see - and, deliberately, carry out - exactly what the executor would do, with the same
selection, verification, audit and memory, from the command line.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Mapping, Sequence

from gateway.clock import Clock
from gateway.config import Settings
from gateway.curtail.executor import Executor
from gateway.curtail.executor_model import ExecutorSettings, FleetMember, TickReport, class_keys, member_for
from gateway.devices.driver import BaseDriver, Credentials, DriverContext, Endpoint
from gateway.devices.errors import DeviceError
from gateway.devices.model import FirmwareFamily, Sample
from gateway.devices.profiles import ProfileCatalog
from gateway.devices.registry import make_driver
from gateway.devices.rpc import RpcLimits
from gateway.store.state import InventoryRow

MAX_TARGETS_BYTES = 64 * 1024
MAX_CLASSES = 1_000
MAX_KEY_CHARS = 200


class TargetsError(ValueError):
    """A targets file that cannot be used; the message names the key at fault."""


def parse_targets(data: bytes, *, source: str = "targets") -> dict[str, int]:
    """`{"<model>:<mode>": miners_on, ...}` -> dict, or a one-line TargetsError. The model is a
    firmware profile key or any model spelling the profiles know ("S21:normal" as the planner writes
    it, "antminer_s21|normal"); the separator is ':' or '|'."""
    if len(data) > MAX_TARGETS_BYTES:
        raise TargetsError(f"{source}: {len(data)} bytes is over the {MAX_TARGETS_BYTES}-byte limit")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise TargetsError(f"{source}: not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise TargetsError(f'{source}: expected an object like {{"S21:normal": 40}}')
    if len(raw) > MAX_CLASSES:
        raise TargetsError(f"{source}: {len(raw)} classes is over the limit of {MAX_CLASSES}")
    targets: dict[str, int] = {}
    for key, value in raw.items():
        shown = key[:40] + ("..." if len(key) > 40 else "")
        parts = re.split(r"[:|]", key, maxsplit=1)
        model, mode = (parts[0], parts[1]) if len(parts) == 2 else ("", "")
        if not model or not mode or len(key) > MAX_KEY_CHARS or not key.isprintable():
            raise TargetsError(f"{source}: key {shown!r} is not '<model>:<mode>'")
        if model[0] in "=+-@" or not all(c.isalnum() or c in "_+-. " for c in model + mode):
            raise TargetsError(f"{source}: key {shown!r} has characters a profile key never has")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            raise TargetsError(f"{source}: {shown}: miners on must be a whole number 0..1000000")
        targets[key] = value
    return targets


def drivers_for_inventory(
    rows: Sequence[InventoryRow], settings: Settings, profiles: ProfileCatalog
) -> dict[str, BaseDriver]:
    """One driver per enabled miner, configured as the gateway configures its own."""
    drivers: dict[str, BaseDriver] = {}
    for row in rows:
        if not row.enabled:
            continue
        family = FirmwareFamily(row.family)
        creds = settings.credentials.get(family)
        context = DriverContext(
            miner_id=row.id,
            endpoint=Endpoint(host=row.ip, rpc_port=row.rpc_port, web_port=row.web_port, v3_port=row.v3_port),
            credentials=Credentials(
                username=creds.username if creds else None, password=creds.password if creds else None
            ),
            limits=RpcLimits(deadline_s=settings.polling.deadline_s),
            profiles=profiles,
            model_hint=row.model,
        )
        drivers[row.id] = make_driver(family, context)
    return drivers


async def read_members(
    rows: Sequence[InventoryRow],
    drivers: Mapping[str, BaseDriver],
    profiles: ProfileCatalog,
    class_of: Mapping[str, str],
) -> list[FleetMember]:
    """Read every miner once; an unreachable one is a member without a sample (selection skips it)."""

    async def one(row: InventoryRow) -> Sample | None:
        try:
            return await drivers[row.id].read()
        except DeviceError:
            return None

    enabled = [r for r in rows if r.id in drivers]
    samples = await asyncio.gather(*(one(r) for r in enabled))
    members = []
    for row, sample in zip(enabled, samples, strict=True):
        profile = None
        if row.profile_key:
            try:
                profile = profiles.get(row.profile_key)
            except KeyError:
                profile = None
        members.append(
            member_for(row.id, class_of.get(row.id), sample, profile, reachable=sample is not None)
        )
    return members


async def apply_once(
    conn: sqlite3.Connection,
    rows: Sequence[InventoryRow],
    drivers: Mapping[str, BaseDriver],
    profiles: ProfileCatalog,
    clock: Clock,
    targets: Mapping[str, int],
    *,
    dry_run: bool = True,
    settings: ExecutorSettings | None = None,
) -> TickReport:
    class_of = class_keys(list(targets), {r.id: r.profile_key or r.model for r in rows})
    members = await read_members(rows, drivers, profiles, class_of)
    executor = Executor(conn, drivers, clock, settings)
    return await executor.tick(
        members, targets, source="manual", reason="hashinsight curtail apply", dry_run=dry_run
    )
