"""What BOSminer, LUXminer and Vnish's cgminer have in common: the CGMiner report sections (SUMMARY, POOLS,
DEVS, FANS) plus a few third-party-firmware helpers (model names, MACs, mode classification).

Private to the braiins/luxos/vnish parsers. Everything here is pure and tolerant: a field a firmware leaves
out comes back as None, and only the caller decides whether its absence is fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.devices.errors import DeviceError, ProtocolError, Unsupported
from gateway.devices.model import MinerStatus, Mode, PoolReading, Source
from gateway.devices.parsers.common import (
    Capture,
    check_status,
    estimated_power,
    first_section,
    ghs_to_ths,
    integer,
    mhs_to_ths,
    number,
    require_mapping,
    section,
    status_entry,
)
from gateway.devices.profiles import MinerProfile

# Vnish (and other fee-charging firmwares) list their own fee pool beside the user's pools, hashing on it
# a few percent of the time. It is real work, so it stays in `pools`, but it is never "the" pool.
_DEVFEE = "devfee"

# An epoch below this is a counter or a "seconds ago", not a timestamp (2001-09-09).
_EPOCH_MIN = 1_000_000_000

# Mode bands, as a ratio of the firmware's target hashrate for its current setting to the model's stock
# hashrate. The upper band is wider because autotuning firmwares (BOS, LuxOS, Vnish) gain 5-10 % at stock
# power by per-chip tuning: that is not overclocking and must not land in "high".
_LOW_BELOW = 0.90
_HIGH_ABOVE = 1.15


# --- replies ---------------------------------------------------------------------------------------


def required(capture: Capture, key: str) -> Mapping[str, Any]:
    """The reply for `key`: an object, and not an error reply (else the error tree's class for it)."""
    reply = require_mapping(capture, key)
    check_status(reply, key)
    return reply


def optional(capture: Capture, key: str, errors: list[str] | None = None) -> Mapping[str, Any] | None:
    """The reply for `key`, or None when absent or an error reply. A command the firmware does not know
    (Code 14, or Vnish's Code 0 "Invalid command") is silently None: that is the firmware, not a fault.
    Other error replies are noted in `errors` so the sample still says something went wrong."""
    reply = capture.get(key)
    if not isinstance(reply, Mapping):
        return None
    try:
        check_status(reply, key)
    except Unsupported:
        return None
    except DeviceError as err:
        if _is_invalid_command(reply):
            return None
        if errors is not None:
            errors.append(str(err))
        return None
    return reply


def _is_invalid_command(reply: Mapping[str, Any]) -> bool:
    message = str(status_entry(reply).get("Msg") or "")
    return message.strip().lower() == "invalid command"


def description(reply: Any) -> str:
    """STATUS Description ("BOSminer+ 0.2.0-36c56a9363", "LUXminer 2025.4.8...", "cgminer 4.11.1")."""
    return str(status_entry(reply).get("Description") or "")


def dig(value: Any, *path: str | int) -> Any:
    """Walk nested objects/lists; None as soon as a step is missing (REST replies nest everything)."""
    for step in path:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, Mapping):
            value = value.get(step)
        else:
            return None
    return value


def indexed(entry: Mapping[str, Any], prefix: str) -> dict[int, Any]:
    """Numbered keys: indexed(stats, "chain_rate") -> {1: .., 2: ..}. `fan_num`/`temp_num` are counts,
    not readings, and never match (the number must follow the prefix directly)."""
    # Exactly `^prefix(\d+)$` (which also allows one trailing newline), without a regex per key: stats
    # entries carry a hundred keys, and this runs several times per reply.
    found: dict[int, Any] = {}
    size = len(prefix)
    for key, value in entry.items():
        if key.startswith(prefix):
            digits = key[size:-1] if key.endswith("\n") else key[size:]
            if digits.isdecimal():
                found[int(digits)] = value
    return dict(sorted(found.items()))


# --- SUMMARY ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SummaryReading:
    hashrate_ths: float | None
    hashrate_avg_ths: float | None
    accepted: int | None
    rejected: int | None
    hw_errors: int | None
    uptime_s: int | None


def rate_ths(entry: Mapping[str, Any], window: str) -> float | None:
    """`GHS <window>` or `MHS <window>` in TH/s. BOSminer reports MHS, LUXminer and Vnish GHS."""
    if f"GHS {window}" in entry:
        return ghs_to_ths(entry[f"GHS {window}"])
    if f"MHS {window}" in entry:
        return mhs_to_ths(entry[f"MHS {window}"])
    return None


def read_summary(reply: Mapping[str, Any]) -> SummaryReading:
    entry = first_section(reply, "SUMMARY", "summary")
    if not entry:
        raise ProtocolError("summary: reply has no SUMMARY section")
    return SummaryReading(
        hashrate_ths=rate_ths(entry, "5s"),  # real time; "av" is since boot and lags for hours
        hashrate_avg_ths=rate_ths(entry, "av"),
        accepted=integer(entry.get("Accepted")),
        rejected=integer(entry.get("Rejected")),
        hw_errors=integer(entry.get("Hardware Errors")),
        uptime_s=integer(entry.get("Elapsed")),
    )


# --- POOLS -----------------------------------------------------------------------------------------


def read_pools(reply: Mapping[str, Any] | None) -> tuple[PoolReading, ...]:
    if reply is None:
        return ()
    when = integer(status_entry(reply).get("When"))
    pools = []
    for entry in section(reply, "POOLS", "pools"):
        url = entry.get("URL")
        if not isinstance(url, str) or not url:
            continue
        accepted = integer(entry.get("Accepted"))
        user = entry.get("User")
        pools.append(
            PoolReading(
                url=url,
                user=user if isinstance(user, str) and user else None,
                status=str(entry["Status"]) if entry.get("Status") is not None else None,
                active=truthy(entry.get("Stratum Active")),
                accepted=accepted,
                rejected=integer(entry.get("Rejected")),
                last_share_ts=share_time(entry.get("Last Share Time"), when, accepted),
            )
        )
    return tuple(pools)


def share_time(value: Any, when: int | None, accepted: int | None) -> int | None:
    """`Last Share Time` as an epoch. BOSminer sends an epoch; LUXminer and Vnish send "H:MM:SS" *ago*,
    relative to the reply's STATUS When. LUXminer shows the time since boot for a pool that never got a
    share ("00:57:33" with Accepted 0) and Vnish "0": both mean never."""
    if isinstance(value, str) and ":" in value:
        if not when or not accepted:
            return None
        try:
            seconds = 0
            for part in value.strip().split(":"):
                seconds = seconds * 60 + int(part)
        except ValueError:
            return None
        return when - seconds
    epoch = integer(value)
    return epoch if epoch is not None and epoch >= _EPOCH_MIN else None


def is_devfee(pool: PoolReading) -> bool:
    return pool.url.lower() == _DEVFEE or (pool.user or "").lower() == _DEVFEE


def pool_url(pools: Iterable[PoolReading]) -> str | None:
    """The user's pool the miner is hashing on now: the first active one that is not a fee pool."""
    return next((p.url for p in pools if p.active and not is_devfee(p)), None)


def last_share_ts(pools: Iterable[PoolReading]) -> int | None:
    times = [p.last_share_ts for p in pools if p.last_share_ts and not is_devfee(p)]
    return max(times) if times else None


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "y", "yes", "1"}
    return value is True or (isinstance(value, int | float) and value == 1)


# --- DEVS / FANS -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DevReading:
    """One DEVS entry (one hashboard). `chain` is the firmware's board id (`ID`): 6, 7, 8 on an S9."""

    index: int
    chain: int | None
    hashrate_ths: float | None
    hashrate_avg_ths: float | None
    nominal_ths: float | None
    temp_c: Any
    hw_errors: int | None
    enabled: bool
    serial: str | None


def read_devs(reply: Mapping[str, Any] | None) -> list[DevReading]:
    if reply is None:
        return []
    devs = []
    for position, entry in enumerate(section(reply, "DEVS", "devs")):
        index = integer(entry.get("ASC"))
        serial = entry.get("SerialNumber")
        devs.append(
            DevReading(
                index=index if index is not None else position,
                chain=integer(entry.get("ID")),
                hashrate_ths=rate_ths(entry, "5s"),
                hashrate_avg_ths=rate_ths(entry, "av"),
                nominal_ths=mhs_to_ths(entry.get("Nominal MHS")),
                temp_c=entry.get("Temperature"),
                hw_errors=integer(entry.get("Hardware Errors")),
                enabled=str(entry.get("Enabled", "Y")).upper() != "N",
                serial=serial if isinstance(serial, str) and serial else None,
            )
        )
    return sorted(devs, key=lambda d: d.index)


def read_fans(reply: Mapping[str, Any] | None) -> list[int]:
    """FANS[{ID, RPM}] (BOSminer, LUXminer) in ID order."""
    if reply is None:
        return []
    entries = section(reply, "FANS", "fans")
    ordered = sorted(entries, key=lambda e: integer(e.get("ID")) or 0)
    return [rpm for rpm in (integer(e.get("RPM")) for e in ordered) if rpm is not None]


def trim_fans(rpms: Sequence[int], profile: MinerProfile | None) -> tuple[int, ...]:
    """Control boards report every fan connector (BOSminer on an S9: 4), but an S9 has 2 fans. Trailing
    0-RPM channels beyond the model's fan count are empty connectors, not stopped fans, and would raise a
    fan-failure alert forever. A 0 within the model's count is kept: that one is a stopped fan."""
    kept = list(rpms)
    if profile is not None:
        while len(kept) > profile.fans and kept[-1] == 0:
            kept.pop()
    return tuple(kept)


# --- derived values --------------------------------------------------------------------------------


def status_from_hashrate(hashrate_ths: float | None) -> MinerStatus:
    return MinerStatus.MINING if hashrate_ths else MinerStatus.IDLE


def classify_mode(target_ths: float | None, stock_ths: float | None) -> Mode:
    """normal/low/high for a firmware that tunes to a target rather than a named mode. `target_ths` is
    what the firmware aims for at its current setting (its nominal/ideal rate, not the noisy live rate),
    `stock_ths` the model's stock rate (the firmware's nameplate figure, else the profile's)."""
    if not target_ths or not stock_ths:
        return Mode.NORMAL
    ratio = target_ths / stock_ths
    if ratio < _LOW_BELOW:
        return Mode.LOW
    if ratio > _HIGH_ABOVE:
        return Mode.HIGH
    return Mode.NORMAL


def power(
    reported_w: Any, profile: MinerProfile | None, hashrate_ths: float | None, mode: Mode | None
) -> tuple[float | None, Source | None]:
    """Watts the firmware reports (measured), else the profile's estimate. A reported 0 or negative is
    "not reported" (BOSminer's tuner says 0 while paused; the control board still draws ~15 W)."""
    watts = number(reported_w)
    if watts is not None and watts > 0:
        return watts, Source.MEASURED
    return estimated_power(profile, hashrate_ths, mode)


def positive(value: Any) -> float | None:
    result = number(value)
    return result if result is not None and result > 0 else None


# --- identity helpers ------------------------------------------------------------------------------

_SUFFIXES = {"pro": "Pro", "xp": "XP", "plus": "+", "+": "+", "hydro": "Hydro", "hyd": "Hyd.", "se": "SE"}
_SUFFIX_RE = re.compile(r"(pro|xp|plus|hydro|hyd\.?|se|\+)", re.IGNORECASE)
_SERIES_RE = re.compile(r"^([A-Za-z]{1,2})(\d+)(.*)$")


def antminer_model(raw: Any) -> str | None:
    """Bitmain's spelling from whatever a third-party firmware reports: "Antminer S21 Pro (Vnish 1.2.7)",
    "s21pro", "BTM_S21PRO" -> "S21 Pro"; "Antminer S19k Pro" -> "S19k Pro"; "S9" -> "S9"."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    text = re.sub(r"\s*\(.*\)\s*$", "", raw.strip())
    text = re.sub(r"^(antminer|bitmain)\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^btm_", "", text, flags=re.IGNORECASE).strip()
    match = _SERIES_RE.match(text)
    if not match:
        return text or None
    letters, digits, rest = match.groups()
    variant = ""
    if _starts_with_variant(rest):
        variant, rest = rest[0].lower(), rest[1:]
    words: list[str] = []
    for token in _SUFFIX_RE.split(rest):
        token = token.strip()
        if not token:
            continue
        canonical = _SUFFIXES.get(token.lower().rstrip("."), token)
        if canonical == "+" and words:
            words[-1] += "+"
        else:
            words.append(canonical)
    series = f"{letters.upper()}{digits}{variant}"
    if words and words[0] == "+":
        return f"{series}+" + (" " + " ".join(words[1:]) if len(words) > 1 else "")
    return " ".join([series, *words])


def _starts_with_variant(rest: str) -> bool:
    """Bitmain's variant letter right after the digits (S19k, S19j, S19a, S19i): one letter followed by
    nothing, a non-letter or a suffix word. "S21PRO" and "S19XP" start with a suffix word instead."""
    if not rest or not rest[0].isalpha() or _SUFFIX_RE.match(rest):
        return False
    tail = rest[1:]
    return not tail or not tail[0].isalpha() or bool(_SUFFIX_RE.match(tail))


def normalize_mac(raw: Any) -> str | None:
    """Upper-case, colon-separated ("62f75eb71046" and "62:f7:5e:b7:10:46" are one miner)."""
    if not isinstance(raw, str):
        return None
    digits = re.sub(r"[^0-9A-Fa-f]", "", raw)
    if len(digits) != 12:
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


def text(value: Any) -> str | None:
    """A non-empty string, or None ("N/A" and "" are how firmwares say "unknown")."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and value.upper() not in {"N/A", "NA", "UNKNOWN", "NONE"} else None
