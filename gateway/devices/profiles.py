"""Firmware profiles: one TOML per hardware model, validated at load.

Profiles are data, not code (pyasic's lesson: firmware x model is a table). They carry the maker's
published nominal figures per mode, which the gateway needs wherever the firmware is silent: stock
Antminers report no watts at all, so their power is estimated from these numbers and marked as such.
A bad file fails loudly with its path and the field at fault; a gateway that silently skipped a profile
would mis-estimate energy for every miner of that model.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.devices.model import Mode

FirmwareName = Literal["stock", "braiins", "luxos", "vnish"]
SleepMethod = Literal[
    "antminer_miner_mode",  # set_miner_conf.cgi miner-mode 1 / 0 (stock Antminer)
    "whatsminer_power_off",  # btminer power_off / power_on (API v2) or set.miner.service (v3)
    "avalon_softoff",  # ascset 0,softoff / softon
    "none",  # the stock firmware cannot sleep (S9); only third-party firmware can, through its own API
]

ENV_PROFILES_DIR = "HASHINSIGHT_PROFILES_DIR"


class ProfileError(ValueError):
    """A profile file is unreadable or invalid. The message names the file and the field."""


class ModeSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hashrate_ths: float = Field(ge=0)
    power_w: float = Field(gt=0)

    @property
    def efficiency_j_per_th(self) -> float | None:
        return self.power_w / self.hashrate_ths if self.hashrate_ths else None


class PowerTargetRange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_w: int = Field(gt=0)
    max_w: int = Field(gt=0)
    firmware: tuple[FirmwareName, ...] = Field(min_length=1)  # which firmwares expose a power target

    @model_validator(mode="after")
    def _ordered(self) -> PowerTargetRange:
        if self.min_w >= self.max_w:
            raise ValueError("min_w must be below max_w")
        return self


class MinerProfile(BaseModel):
    """One hardware model. `key` is the file name without `.toml` (e.g. `antminer_s19_pro`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    make: Literal["Antminer", "Whatsminer", "Avalon"]
    model: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()  # other spellings firmwares report: "S19Pro", "M30SPlus" ...
    hashboards: int = Field(gt=0, le=8)
    chips_per_board: int = Field(gt=0, le=1000)
    # Whatsminer builds one model from several board revisions with different chip counts (M30S+ V10 has
    # 215 chips a board, VE40 156, VH10 64); the revision is the suffix the firmware reports (M30S+_VE40).
    chips_per_board_by_revision: dict[str, int] = Field(default_factory=dict)
    fans: int = Field(ge=0, le=8)
    modes: dict[Mode, ModeSpec]
    power_target: PowerTargetRange | None = None
    sleep_method: SleepMethod
    firmware: tuple[FirmwareName, ...] = Field(min_length=1)
    default_credential_names: tuple[str, ...] = ()  # names only (e.g. "antminer_web_root"); never secrets
    source: str = Field(min_length=10)  # where the figures come from: the maker's spec sheet / page

    @field_validator("chips_per_board_by_revision")
    @classmethod
    def _revisions(cls, table: dict[str, int]) -> dict[str, int]:
        for revision, chips in table.items():
            if not re.fullmatch(r"V[A-Z]?\d+", revision):
                raise ValueError(f"revision {revision!r} is not a board revision like 'V10' or 'VE40'")
            if not 0 < chips <= 1000:
                raise ValueError(f"revision {revision!r}: chips per board must be 1..1000")
        return table

    @field_validator("modes")
    @classmethod
    def _needs_normal_and_sleep(cls, modes: dict[Mode, ModeSpec]) -> dict[Mode, ModeSpec]:
        for required in (Mode.NORMAL, Mode.SLEEP):
            if required not in modes:
                raise ValueError(f"mode '{required.value}' is required")
        if modes[Mode.SLEEP].hashrate_ths != 0:
            raise ValueError("sleep mode must have hashrate_ths = 0")
        return modes

    def mode(self, mode: Mode | None) -> ModeSpec:
        """The spec for `mode`, falling back to normal for modes the model does not have."""
        return self.modes.get(mode or Mode.NORMAL) or self.modes[Mode.NORMAL]

    @property
    def nominal_ths(self) -> float:
        return self.modes[Mode.NORMAL].hashrate_ths

    @property
    def sleep_w(self) -> float:
        return self.modes[Mode.SLEEP].power_w

    def chips_expected(self, reported_model: str | None = None) -> int:
        """Chips per board for the model string the firmware reported (its board revision, if any)."""
        revision = model_revision(reported_model) if reported_model else None
        if revision is None:
            return self.chips_per_board
        return self.chips_per_board_by_revision.get(revision, self.chips_per_board)

    def estimate_power_w(self, hashrate_ths: float | None, mode: Mode | None) -> float | None:
        """Watts from the model's efficiency: J/TH of the mode x the measured TH/s.

        Scaling by the measured rate (not the nominal one) makes a miner with a dead board draw less,
        which is what the wall meter shows.
        """
        if mode is Mode.SLEEP:
            return self.sleep_w
        if hashrate_ths is None:
            return None
        spec = self.mode(mode)
        if not spec.efficiency_j_per_th:
            return None
        return max(hashrate_ths * spec.efficiency_j_per_th, self.sleep_w)


_MAKER_PREFIX = re.compile(r"^(antminer|whatsminer|avalon ?miner|avalon|bitmain|microbt|canaan)\s*")
_REVISION = re.compile(r"(?<=[0-9a-z+])v[a-z]?\d+$")  # M20SV10, M30S+VE40, M60SVK40


def _compact(name: str) -> str:
    value = name.strip().split("\n", 1)[0].lower()  # S9 bmminer: "Antminer S9\nV1.3.58"
    value = re.sub(r"\((?:vnish|braiins|bos|luxos)[^)]*\)", "", value)  # "Antminer S21 Pro (Vnish 1.2.7)"
    value = _MAKER_PREFIX.sub("", value.strip())
    value = re.sub(r"^(a?\d{2,4})-\d+$", r"\1", value)  # Avalon hashrate bin: "1246-83" (83 TH/s)
    value = value.replace("plus", "+")
    return re.sub(r"[\s\-_()]+", "", value)


def normalize_model_name(name: str) -> str:
    """Canonical comparison form: 'Antminer S19 Pro' / 'S19Pro' / 's19-pro' -> 's19pro';
    'M30S+' / 'M30SPlus' / 'M30S+_VE40' / 'M30S+V40' -> 'm30s+'; 'AvalonMiner 1246-83' -> '1246'.
    Whatsminer's board-revision suffix (V10, VE40, _VK40 ...) and Avalon's hashrate-bin suffix (-83) do
    not change the nominal figures we need, so they are dropped (`model_revision` keeps the former).
    Firmware decorations are dropped too: the version line the S9 appends after a newline, and Vnish's
    " (Vnish 1.2.7)"."""
    return _REVISION.sub("", _compact(name))


def model_revision(name: str) -> str | None:
    """The Whatsminer board revision in a reported model string: 'M30S+_VE40' -> 'VE40', else None."""
    found = _REVISION.search(_compact(name))
    return found.group(0).upper() if found else None


_MATCH_CACHE_MAX = 4096


class ProfileCatalog:
    """All loaded profiles, looked up by key or by any model spelling a firmware reports."""

    def __init__(self, profiles: Iterable[MinerProfile]) -> None:
        self._by_key: dict[str, MinerProfile] = {}
        self._by_name: dict[tuple[str, str], MinerProfile] = {}
        # match() runs for every parsed reply (10,000 per poll cycle) on the few model strings a site's
        # firmwares report; the catalog never changes after loading, so answers are kept.
        self._matches: dict[tuple[str | None, str], MinerProfile | None] = {}
        for profile in profiles:
            self._by_key[profile.key] = profile
            for name in (profile.model, *profile.aliases):
                self._by_name[(profile.make.lower(), normalize_model_name(name))] = profile

    def __iter__(self) -> Iterator[MinerProfile]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> MinerProfile:
        try:
            return self._by_key[key]
        except KeyError:
            raise KeyError(f"no firmware profile named {key!r}") from None

    def match(self, make: str | None, model: str | None) -> MinerProfile | None:
        """The profile for a model string as a firmware reports it, or None if we have none."""
        if not model:
            return None
        key = (make, model)
        try:
            return self._matches[key]
        except KeyError:
            pass
        found = self._match(make, model)
        if len(self._matches) < _MATCH_CACHE_MAX:  # bounded: a fuzzed or hostile reply cannot grow it
            self._matches[key] = found
        return found

    def _match(self, make: str | None, model: str) -> MinerProfile | None:
        wanted = normalize_model_name(model)
        if make:
            return self._by_name.get((make.lower(), wanted))
        for (_, name), profile in self._by_name.items():
            if name == wanted:
                return profile
        return None


def default_profiles_dir() -> Path:
    """The repo's `firmware_profiles/` in a checkout, else the copy bundled into the wheel."""
    override = os.environ.get(ENV_PROFILES_DIR)
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    checkout = here.parents[2] / "firmware_profiles"
    return checkout if checkout.is_dir() else here.parent / "_bundled_profiles"


def load_profile(path: Path) -> MinerProfile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError(f"{path}: cannot read: {err.strerror or err}") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ProfileError(f"{path}: not valid TOML: {err}") from err
    raw.setdefault("key", path.stem)
    try:
        return MinerProfile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise ProfileError(f"{path}: field '{where}': {first['msg']}") from err


def load_profiles(directory: Path | None = None) -> ProfileCatalog:
    directory = directory or default_profiles_dir()
    if not directory.is_dir():
        raise ProfileError(f"{directory}: firmware profile directory not found")
    return ProfileCatalog(load_profile(path) for path in sorted(directory.glob("*.toml")))
