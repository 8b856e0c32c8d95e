"""Units at the energy edge: joules <-> kWh, instants, zones, money rounding (ARCHITECTURE §3).

Why a module of its own: every part of `gateway.energy` must make the same three choices, and a second copy
of any of them is how a cent goes missing between an invoice and its evidence file.

- Energy stays integer joules; kWh only appears as an exact `Fraction` (1 kWh = 3,600,000 J is not a finite
  decimal fraction of a joule count, so a `Decimal` kWh would already be rounded).
- An instant is UTC epoch seconds. Aware datetimes are accepted and converted; naive ones are refused,
  because a naive wall-clock time is exactly the ambiguity (DST, site zone vs host zone) we must not guess.
- Money is computed exactly (`Fraction`) and rounded once, per line, half-to-even, to the currency's minor
  unit. `Fraction.__round__` is exact banker's rounding, so no Decimal context precision can interfere.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

J_PER_KWH = 3_600_000
J_PER_KW_S = 1_000  # 1 kW held for one second

__all__ = ["J_PER_KWH", "J_PER_KW_S", "display", "kwh", "round_money", "site_zone", "to_epoch"]


def to_epoch(value: int | datetime, *, what: str = "time") -> int:
    """UTC epoch seconds from an int or an aware datetime; naive datetimes and sub-second times refused."""
    if isinstance(value, bool):
        raise TypeError(f"{what}: a bool is not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{what}: naive datetime {value.isoformat()} (give an aware datetime or epoch s)"
            )
        if value.microsecond:
            raise ValueError(f"{what}: {value.isoformat()} is not on a whole second")
        return int(value.timestamp())
    raise TypeError(f"{what}: expected epoch seconds or an aware datetime, got {type(value).__name__}")


def site_zone(tz: str | ZoneInfo) -> ZoneInfo:
    """The site's IANA zone. A bad name fails here, with the name, instead of deep inside a pricing loop."""
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(f"unknown IANA time zone {tz!r}") from err


def kwh(joules: int | Fraction) -> Fraction:
    """Exact kWh of a joule count."""
    return Fraction(joules, J_PER_KWH) if isinstance(joules, int) else joules / J_PER_KWH


def round_money(amount: Fraction, minor_unit: int = 2) -> Decimal:
    """Round an exact amount once, half-to-even, to `minor_unit` decimal places (2 for USD)."""
    if minor_unit < 0:
        raise ValueError("minor_unit must be >= 0")
    units = round(amount * 10**minor_unit)  # Fraction.__round__(): exact, ties to even
    return Decimal(f"{units}e{-minor_unit}")  # built from a string: no context can round it again


def display(value: Fraction, places: int = 6) -> Decimal:
    """A quantity (kWh, kW) for people to read; the exact `Fraction` stays the figure of record."""
    return round_money(value, places)
