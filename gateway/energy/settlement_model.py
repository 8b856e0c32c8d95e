"""The inputs of a settlement (period, assignments, interval energy, fee schedule) and its exact
rounding; the outputs are in `settlement_output`.

Everything here and there is a frozen keyword-only dataclass, so a settlement is a value: two runs on the same
inputs compare equal, and a draft can be hashed into evidence without worrying that something mutated it.

Units follow ARCHITECTURE §3: energy in integer joules (`_j`), time in integer seconds (`_s`), money in
`Decimal`. kWh and percentages are derived *display* values (properties), never the other way round,
so no figure is ever computed from a rounded one by accident.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

J_PER_KWH = 3_600_000

NO_MONEY_NOTICE = (
    "Draft and evidence only: HashInsight Edge never moves, holds or pays out money. "
    "No payment, custody or payout takes place through this product."
)

# ISO 4217 currencies whose minor unit is not the usual cent; anything else rounds to 2 places.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}


def round_half_even(value: Fraction, places: int) -> Decimal:
    """`value` rounded once, ties to even, to `places` decimals, as an exact `Decimal`.

    Works on the exact `Fraction` and builds the `Decimal` from its digits, so no decimal context (its
    precision, its rounding mode, its traps) can round a second time behind our back."""
    scaled = value * 10**places if places >= 0 else value / 10**-places
    q, r = divmod(scaled.numerator, scaled.denominator)  # floor division: r in [0, den)
    if 2 * r > scaled.denominator or (2 * r == scaled.denominator and q % 2):
        q += 1
    digits = tuple(int(d) for d in str(abs(q)))
    return Decimal((1 if q < 0 else 0, digits, -places))


def minor_units(currency: str) -> int:
    """Decimal places of `currency`'s minor unit (USD cents: 2)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def _check_decimal(name: str, value: object) -> Decimal:
    """Money and rates must be finite `Decimal`s: a float has already lost the cents we promise to keep."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite decimal.Decimal, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    """The billing period `[start, end)` in UTC epoch seconds (a local calendar month converted by the
    caller, so DST days simply have 92 or 100 intervals)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty period [{self.start}, {self.end})")


@dataclass(frozen=True, slots=True, kw_only=True)
class Assignment:
    """`miner_id` belongs to `customer_id` over `[start, end)` (UTC epoch seconds; `end` None: open)."""

    miner_id: str
    customer_id: str
    start: int
    end: int | None = None

    def __post_init__(self) -> None:
        if self.end is not None and self.end <= self.start:
            who = f"{self.miner_id} -> {self.customer_id}"
            raise ValueError(f"assignment {who}: empty [{self.start}, {self.end})")


class IntervalRow(Protocol):
    """What settlement reads from a metered row; `gateway.metering.IntervalEnergy` is one."""

    @property
    def miner_id(self) -> str: ...
    @property
    def interval_start(self) -> int: ...
    @property
    def joules(self) -> int: ...
    @property
    def covered_s(self) -> int: ...
    @property
    def uncovered_s(self) -> int: ...
    @property
    def estimated_s(self) -> int: ...


IntArray = npt.NDArray[np.integer[Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntervalColumns:
    """Interval energy as columns: row `i` is miner `miner_ids[miner[i]]` in the interval starting at
    `interval_start[i]`.

    This is the form a month of a large site arrives in (28.8 M rows for 10,000 miners): straight from a
    DuckDB/Arrow query, without building 28.8 M Python objects. The arrays are read in chunks and never
    copied whole."""

    miner_ids: tuple[str, ...]
    miner: IntArray
    interval_start: IntArray
    joules: IntArray
    covered_s: IntArray
    uncovered_s: IntArray
    estimated_s: IntArray

    def __post_init__(self) -> None:
        n = len(self.miner)
        for name in ("miner", "interval_start", "joules", "covered_s", "uncovered_s", "estimated_s"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or len(arr) != n:
                raise ValueError(f"IntervalColumns.{name} must be a 1-D array of {n} rows")
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"IntervalColumns.{name} must hold integers, not {arr.dtype}")
        if len(set(self.miner_ids)) != len(self.miner_ids):
            raise ValueError("IntervalColumns.miner_ids has duplicates")
        if n and (int(self.miner.min()) < 0 or int(self.miner.max()) >= len(self.miner_ids)):
            raise ValueError("IntervalColumns.miner indexes outside miner_ids")

    def __len__(self) -> int:
        return len(self.miner)

    @classmethod
    def from_rows(cls, rows: Iterable[IntervalRow]) -> IntervalColumns:
        index: dict[str, int] = {}
        cols: tuple[list[int], ...] = ([], [], [], [], [], [])
        for r in rows:
            values = (
                index.setdefault(r.miner_id, len(index)),
                r.interval_start,
                r.joules,
                r.covered_s,
                r.uncovered_s,
                r.estimated_s,
            )
            for col, v in zip(cols, values, strict=True):
                col.append(v)
        arrays = [np.asarray(c, dtype=np.int64) for c in cols]
        return cls(
            miner_ids=tuple(index),
            miner=arrays[0],
            interval_start=arrays[1],
            joules=arrays[2],
            covered_s=arrays[3],
            uncovered_s=arrays[4],
            estimated_s=arrays[5],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Pue:
    """Facility overhead as a power usage effectiveness: the customer also pays `factor - 1` times their
    metered energy, at the same interval prices (cooling and losses run when the miners run)."""

    factor: Decimal

    def __post_init__(self) -> None:
        if _check_decimal("Pue.factor", self.factor) < 1:
            raise ValueError(f"PUE below 1 is not physical: {self.factor}")


@dataclass(frozen=True, slots=True, kw_only=True)
class FacilityAdder:
    """Facility overhead as a flat price per metered kWh."""

    per_kwh: Decimal
    description: str = "Facility adder"

    def __post_init__(self) -> None:
        _check_decimal("FacilityAdder.per_kwh", self.per_kwh)


@dataclass(frozen=True, slots=True, kw_only=True)
class KwhAdder:
    """A per-kWh charge on metered energy (transmission, a hosting margin, ...): its own line."""

    description: str
    per_kwh: Decimal

    def __post_init__(self) -> None:
        _check_decimal("KwhAdder.per_kwh", self.per_kwh)


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedFee:
    """A fixed charge per period; `customers` None: every invoiced customer. Not prorated: a caller who
    wants a partial month passes the prorated amount."""

    description: str
    amount: Decimal
    customers: frozenset[str] | None = None

    def __post_init__(self) -> None:
        _check_decimal("FixedFee.amount", self.amount)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credit:
    """A curtailment or demand-response credit owed to a customer, as its own (negative) line.

    Either a lump `amount`, or `energy_j` curtailed at `per_kwh`. Both are given as positive numbers; the
    line carries the minus sign. (A negative credit is a charge: use a `FixedFee`.)"""

    customer_id: str
    description: str
    amount: Decimal | None = None
    energy_j: int | None = None
    per_kwh: Decimal | None = None

    def __post_init__(self) -> None:
        lump = self.amount is not None
        per_energy = self.energy_j is not None and self.per_kwh is not None
        if lump == per_energy or (not lump and (self.energy_j is None) != (self.per_kwh is None)):
            raise ValueError(f"credit {self.description!r}: give either amount, or energy_j and per_kwh")
        if self.amount is not None and _check_decimal("Credit.amount", self.amount) < 0:
            raise ValueError(f"credit {self.description!r}: amount must be >= 0")
        if self.per_kwh is not None and _check_decimal("Credit.per_kwh", self.per_kwh) < 0:
            raise ValueError(f"credit {self.description!r}: per_kwh must be >= 0")
        if self.energy_j is not None and self.energy_j < 0:
            raise ValueError(f"credit {self.description!r}: energy_j must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandCharge:
    """A site demand charge (the utility's $/kW on the billing peak) passed through to customers.

    Allocation is by coincident peak: each owner pays `amount` x (their joules in the peak window / the
    site's joules in it). That is the share of the peak their load *caused*, so a customer who curtails
    in the peak window pays less, and one who only ran off-peak pays nothing. The unassigned remainder's
    share is the host's. `[window_start, window_end)` is the utility's demand interval (15/30/60 min)
    in which the site peaked, on the settlement's interval grid."""

    description: str
    amount: Decimal
    window_start: int
    window_end: int

    def __post_init__(self) -> None:
        if _check_decimal("DemandCharge.amount", self.amount) < 0:
            raise ValueError(f"demand charge {self.description!r}: amount must be >= 0")
        if self.window_end <= self.window_start:
            raise ValueError(f"demand charge {self.description!r}: empty peak window")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeeSchedule:
    """The site's fee schedule for one period.

    `max_energy_lines`: when the period has at most this many distinct energy prices (flat, TOU), each
    price the customer used gets its own energy line, so quantity x price = amount can be checked line by
    line; beyond it (real-time prices) the energy is one line at its volume-weighted average price."""

    currency: str = "USD"
    facility: Pue | FacilityAdder | None = None
    adders: tuple[KwhAdder, ...] = ()
    fixed_fees: tuple[FixedFee, ...] = ()
    service_fee_pct: Decimal = Decimal(0)
    tax_pct: Decimal = Decimal(0)
    credits: tuple[Credit, ...] = ()
    demand_charges: tuple[DemandCharge, ...] = ()
    max_energy_lines: int = 12

    def __post_init__(self) -> None:
        _check_decimal("FeeSchedule.service_fee_pct", self.service_fee_pct)
        _check_decimal("FeeSchedule.tax_pct", self.tax_pct)
        if self.max_energy_lines < 1:
            raise ValueError("max_energy_lines must be >= 1")

    @property
    def minor_units(self) -> int:
        return minor_units(self.currency)
