"""Build a fleet of virtual miners from a model mix and a seed.

A mix entry is `MODEL[@FIRMWARE]=WEIGHT`, e.g. `s19=0.5,m30s+=0.3,s21pro@braiins=0.2`. MODEL is any
spelling the profiles know (profile key, model, alias); FIRMWARE is stock (default), braiins, luxos or
vnish, and must be one the profile says runs on that model. Counts are apportioned by largest
remainder, so `--miners 10 --mix a=0.5,b=0.5` gives exactly 5 and 5, and the same seed always builds
the same fleet at the same addresses.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.devices.model import FirmwareFamily
from gateway.devices.profiles import MinerProfile, ProfileCatalog
from gateway.simulator.miner import Quirks, SimIdentity, SimMiner
from gateway.simulator.physics import PhysicsParams

DEFAULT_MIX = (
    "s19jpro=0.2,s19xp=0.1,s21=0.15,t21=0.05,s19kpro@luxos=0.1,s21pro@braiins=0.1,s21pro@vnish=0.05,"
    "m30s+=0.1,m50s=0.05,m60s=0.03,a1246=0.05,avalonq=0.02"
)
STOCK_FAMILY = {
    "Antminer": FirmwareFamily.ANTMINER,
    "Whatsminer": FirmwareFamily.WHATSMINER,
    "Avalon": FirmwareFamily.AVALON,
}
THIRD_PARTY = {
    "braiins": FirmwareFamily.BRAIINS,
    "luxos": FirmwareFamily.LUXOS,
    "vnish": FirmwareFamily.VNISH,
}
# Factory credentials per family (the simulated miners keep them; wrong_credentials breaks them).
DEFAULT_CREDENTIALS = {
    FirmwareFamily.ANTMINER: ("root", "root"),
    FirmwareFamily.WHATSMINER: ("admin", "admin"),
    FirmwareFamily.AVALON: ("root", "root"),
    FirmwareFamily.BRAIINS: ("root", "root"),
    FirmwareFamily.LUXOS: ("root", "root"),
    FirmwareFamily.VNISH: ("admin", "admin"),
}
FIRMWARE_VERSIONS = {
    FirmwareFamily.ANTMINER: "Thu Jul 11 16:38:25 CST 2024",
    FirmwareFamily.WHATSMINER: "20240517.16.REL",
    FirmwareFamily.AVALON: "25052801_14a19a2",
    FirmwareFamily.BRAIINS: "26.04",
    FirmwareFamily.LUXOS: "2025.4.8.220305",
    FirmwareFamily.VNISH: "1.2.7",
}


class MixError(ValueError):
    """A `--mix` string names an unknown model, an unsupported firmware, or bad weights."""


@dataclass(frozen=True, slots=True)
class MixEntry:
    profile: MinerProfile
    family: FirmwareFamily
    weight: float


def parse_mix(text: str, profiles: ProfileCatalog) -> list[MixEntry]:
    entries = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        name, sep, weight_text = raw.partition("=")
        if not sep:
            raise MixError(f"mix entry {raw!r} needs a weight: MODEL[@FIRMWARE]=WEIGHT")
        model, _, firmware = name.strip().partition("@")
        profile = _find_profile(model, profiles)
        family = _family_for(profile, firmware.strip().lower() or "stock")
        try:
            weight = float(weight_text)
        except ValueError:
            raise MixError(f"mix entry {raw!r}: weight {weight_text!r} is not a number") from None
        if not weight > 0:
            raise MixError(f"mix entry {raw!r}: weight must be positive")
        entries.append(MixEntry(profile, family, weight))
    if not entries:
        raise MixError("the mix is empty")
    return entries


def _find_profile(model: str, profiles: ProfileCatalog) -> MinerProfile:
    key = model.strip().lower()
    for profile in profiles:
        if key == profile.key or key == profile.key.split("_", 1)[1].replace("_plus", "+").replace("_", ""):
            return profile
    found = profiles.match(None, model)
    if found is None:
        known = ", ".join(sorted(p.key for p in profiles))
        raise MixError(f"unknown model {model!r}; known profiles: {known}")
    return found


def _family_for(profile: MinerProfile, firmware: str) -> FirmwareFamily:
    if firmware not in profile.firmware:
        raise MixError(
            f"{profile.make} {profile.model} does not run {firmware} (runs: {', '.join(profile.firmware)})"
        )
    return STOCK_FAMILY[profile.make] if firmware == "stock" else THIRD_PARTY[firmware]


def apportion(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder apportionment: counts sum to `total` exactly."""
    scale = sum(weights)
    exact = [total * w / scale for w in weights]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (exact[i] - counts[i], -i), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def addresses(first: str, count: int) -> Iterator[str]:
    """Consecutive loopback addresses from `first`, skipping .0 and .255 hosts (network/broadcast-looking
    addresses confuse some scanners and humans alike)."""
    address = ipaddress.IPv4Address(first)
    if not address.is_loopback:
        raise ValueError(f"{first} is not a loopback address: the simulator only serves on 127.0.0.0/8")
    produced = 0
    while produced < count:
        if not address.is_loopback:
            raise ValueError(f"ran out of loopback addresses after {produced} miners")
        if address.packed[-1] not in (0, 255):
            yield str(address)
            produced += 1
        address += 1


def build_fleet(
    *,
    count: int,
    mix: list[MixEntry],
    seed: int,
    first_address: str,
    clock: Callable[[], float],
    params: PhysicsParams | None = None,
) -> list[SimMiner]:
    rng = random.Random(seed)
    kinds: list[MixEntry] = []
    for entry, n in zip(mix, apportion(count, [e.weight for e in mix]), strict=True):
        kinds.extend([entry] * n)
    rng.shuffle(kinds)
    miners = []
    for index, (ip, entry) in enumerate(zip(addresses(first_address, count), kinds, strict=True)):
        mac = "02:" + ":".join(f"{rng.randrange(256):02X}" for _ in range(5))
        identity = SimIdentity(
            make=entry.profile.make,
            model=entry.profile.model,
            family=entry.family,
            mac=mac,
            serial=f"SIM{seed % 1000:03d}{index:07d}",
            hostname=f"{entry.profile.key.replace('_', '-')}-{index:05d}",
            firmware_version=FIRMWARE_VERSIONS[entry.family],
        )
        username, password = DEFAULT_CREDENTIALS[entry.family]
        # Stock firmwares restart their mining process on a mode change; third-party ones retune live.
        restarts = entry.family in (FirmwareFamily.ANTMINER, FirmwareFamily.WHATSMINER)
        miner_params = dataclasses.replace(params or PhysicsParams(), restart_on_mode_change=restarts)
        miners.append(
            SimMiner.create(
                ip=ip,
                identity=identity,
                profile=entry.profile,
                clock=clock,
                seed=rng.randrange(2**32),
                params=miner_params,
                quirks=Quirks(concatenated_objects=entry.profile.key == "antminer_s9"),
                username=username,
                password=password,
            )
        )
    return miners
