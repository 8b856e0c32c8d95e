"""Mining economics: hashprice and the breakeven power price per model and mode.

Why Decimal throughout: these figures end up beside invoice lines and curtailment credits, and a float
breakeven that differs in the 15th digit from the one printed makes "price above breakeven" disagree with
the number a person reads. Rates (hashprice, $/kWh) are exact quotients in a 40-digit context; only money
totals are rounded, once, by the caller.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import IO

from gateway.energy.safe_csv import CsvLimits, ImportRefused, parse_decimal, read_rows

__all__ = [
    "Economics",
    "HashpriceSeries",
    "breakeven_per_kwh",
    "hashprice_usd_per_th_day",
    "margin_usd_per_period",
    "read_hashprice_csv",
]

_CTX = Context(prec=40)
_SECONDS_PER_DAY = 86_400
_TWO_32 = 2**32


def _dec(value: float | int | Decimal) -> Decimal:
    """A float from a profile (kW, TH/s) as the decimal a person wrote, not its binary expansion."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


def hashprice_usd_per_th_day(
    *, subsidy_btc: Decimal, fees_btc_per_block: Decimal, difficulty: Decimal, btc_price_usd: Decimal
) -> Decimal:
    """USD earned per TH/s per day: (subsidy + fees) x 86400 x 1e12 / (difficulty x 2^32) x BTC price.

    One hash finds a block with probability 1 / (difficulty x 2^32); a TH/s makes 86400 x 1e12 hashes a day.
    """
    for name, value in (
        ("subsidy_btc", subsidy_btc),
        ("fees_btc_per_block", fees_btc_per_block),
        ("btc_price_usd", btc_price_usd),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if difficulty <= 0:
        raise ValueError(f"difficulty must be > 0, got {difficulty}")
    btc_per_th_day = _CTX.divide(
        _CTX.multiply(subsidy_btc + fees_btc_per_block, Decimal(_SECONDS_PER_DAY) * Decimal(10) ** 12),
        _CTX.multiply(difficulty, Decimal(_TWO_32)),
    )
    return _CTX.multiply(btc_per_th_day, btc_price_usd)


@dataclass(frozen=True, slots=True, kw_only=True)
class Economics:
    """What turns a market price into the site's cost: pool fee (fraction), PUE, per-kWh adders ($/kWh).

    PUE multiplies the miners' energy (cooling, transformer losses); adders are per-kWh charges on top of the
    market price (transmission, retail fees). Both shift the breakeven market price down.
    """

    pool_fee: Decimal = Decimal("0.02")
    pue: Decimal = Decimal("1.0")
    adder_per_kwh: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.pool_fee < Decimal(1):
            raise ValueError(f"pool_fee must be in [0, 1), got {self.pool_fee}")
        if self.pue < 1:
            raise ValueError(f"pue must be >= 1, got {self.pue}")


def breakeven_per_kwh(
    *, hashprice: Decimal, ths: float | Decimal, kw: float | Decimal, economics: Economics
) -> Decimal:
    """The market price ($/kWh) at which a miner earns exactly its power cost.

    Revenue per kWh drawn = hashprice x TH/s x (1 - pool fee) / (kW x 24); the site pays
    (market + adders) x PUE per miner kWh, so breakeven market = revenue per kWh / PUE - adders.
    """
    kw_d = _dec(kw)
    if kw_d <= 0:
        raise ValueError(f"kW must be > 0, got {kw}")
    revenue_per_kwh = _CTX.divide(
        _CTX.multiply(_CTX.multiply(hashprice, _dec(ths)), 1 - economics.pool_fee), kw_d * 24
    )
    return _CTX.divide(revenue_per_kwh, economics.pue) - economics.adder_per_kwh


def margin_usd_per_period(
    *,
    hashprice: Decimal,
    price_per_kwh: Decimal,
    ths: float | Decimal,
    kw: float | Decimal,
    period_s: int,
    economics: Economics,
) -> Decimal:
    """Net USD one running miner earns in one period: mining value minus its energy cost (unrounded)."""
    value = _CTX.divide(
        _CTX.multiply(_CTX.multiply(hashprice, _dec(ths)), (1 - economics.pool_fee) * period_s),
        _SECONDS_PER_DAY,
    )
    cost = _CTX.divide(
        _CTX.multiply(_CTX.multiply(_dec(kw), economics.pue), (price_per_kwh + economics.adder_per_kwh))
        * period_s,
        3600,
    )
    return value - cost


@dataclass(frozen=True, slots=True, kw_only=True)
class HashpriceSeries:
    """Hashprice ($/TH/day) from `starts[i]` until the next start; before the first start, the first value.

    A constant configured hashprice is a one-point series."""

    starts: tuple[int, ...]
    values: tuple[Decimal, ...]

    def __post_init__(self) -> None:
        if not self.starts or len(self.starts) != len(self.values):
            raise ValueError("hashprice series needs one value per start, at least one")
        if any(b <= a for a, b in zip(self.starts, self.starts[1:], strict=False)):
            raise ValueError("hashprice series starts must be strictly increasing")
        if any(v < 0 for v in self.values):
            raise ValueError("hashprice must be >= 0")

    @classmethod
    def constant(cls, value: Decimal) -> HashpriceSeries:
        return cls(starts=(0,), values=(value,))

    def at(self, ts: int) -> Decimal:
        i = bisect_right(self.starts, ts) - 1
        return self.values[max(i, 0)]


_HASHPRICE_COLUMNS = ("ts", "hashprice_usd_per_th_day")


def read_hashprice_csv(source: bytes | IO[bytes], *, limits: CsvLimits | None = None) -> HashpriceSeries:
    """`ts,hashprice_usd_per_th_day` with ts in epoch seconds, strictly increasing; all or nothing."""
    rows = read_rows(source, limits or CsvLimits())
    head = next(rows, None)
    if head is None:
        raise ImportRefused("empty input: no header", line=1)
    if tuple(f.strip() for f in head[1]) != _HASHPRICE_COLUMNS:
        raise ImportRefused(f"header must be {','.join(_HASHPRICE_COLUMNS)}", line=head[0])
    starts: list[int] = []
    values: list[Decimal] = []
    for line, fields in rows:
        if len(fields) != 2:
            raise ImportRefused(f"{len(fields)} fields where the header has 2", line=line)
        text = fields[0].strip()
        if not text.isdigit() or len(text) > 11:
            raise ImportRefused(f"{text[:40]!r} is not epoch seconds", line=line, column=1, column_name="ts")
        ts = int(text)
        if starts and ts <= starts[-1]:
            raise ImportRefused("ts not after the previous row", line=line, column=1, column_name="ts")
        value = parse_decimal(fields[1], line=line, column=2, column_name=_HASHPRICE_COLUMNS[1])
        if not Decimal(0) <= value <= Decimal(100):
            raise ImportRefused(
                f"{value} $/TH/day is outside 0..100: wrong unit?",
                line=line,
                column=2,
                column_name=_HASHPRICE_COLUMNS[1],
            )
        starts.append(ts)
        values.append(value)
    if not starts:
        raise ImportRefused("no hashprice rows", line=None)
    return HashpriceSeries(starts=tuple(starts), values=tuple(values))
