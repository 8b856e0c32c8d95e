"""Pool earnings import: what the pool says it credited, per UTC day, in exact BTC.

Why presets: each pool exports its own columns. A preset is data (which column is the day, which columns
are summed into the day's earnings, which must be present), so adding a pool is a table entry. No real
export is public; the presets follow the pools' documented API field names (see the fixtures README):

- `braiins`: the `daily_rewards` fields date, total_reward, mining_reward, bos_plus_reward,
  referral_bonus, referral_reward, calculation_date. Paid = `mining_reward` (the FPPS reward); the
  bonuses are not FPPS and would hide a shortfall. total_reward must equal the four parts (a file
  that disagrees with itself is refused). One row per day.
- `f2pool`: v2 transactions flattened (changed_balance, created_at, and `mining_extra`'s mining_date,
  settle_date, pps, pps_fee_rate, tx_fee, tx_fee_rate, hash_rate). Paid = changed_balance, credited
  to `mining_date`. A row without mining_date is not mining income (a payout, an adjustment) and is
  skipped and counted. One row per mining day.
- `ocean`: ASSUMED columns, not documented publicly in a form we could check: `time` (ISO 8601 with
  offset, when the block's reward was credited), `block_height`, `earnings_btc`. Rows are summed per
  UTC day (Ocean pays per block found, TIDES, so its days are lumpy: compare over weeks).
- `generic`: one date column and one amount column, unit BTC or sat, one row per day.

Days are UTC dates (Braiins and F2Pool settle on UTC days). A date is `YYYY-MM-DD`, epoch seconds, or an
ISO 8601 instant with an offset; a naive date-time is refused (whose midnight?). Amounts are `Decimal`
BTC: at most 8 decimals (a satoshi) or an integer count of sats; negative earnings are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Literal

from gateway.energy.safe_csv import CsvLimits, ImportRefused, parse_decimal, read_rows

__all__ = ["PRESETS", "AmountUnit", "PoolEarnings", "PoolMapping", "generic_mapping", "read_pool_csv"]

AmountUnit = Literal["BTC", "sat"]
SAT = Decimal("0.00000001")
_EPOCH = re.compile(r"^\d{1,13}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_EPOCH = 4_102_444_800


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolMapping:
    """Which columns make a day's earnings. `required` must all be present in the header (a file from
    another pool, or another export, fails at line 1 instead of importing the wrong column)."""

    name: str
    date_column: str
    amount_columns: tuple[str, ...]
    unit: AmountUnit = "BTC"
    required: tuple[str, ...] = ()
    sum_per_day: bool = False
    skip_when_date_empty: bool = False
    total_check: tuple[str, tuple[str, ...]] | None = None  # (total column, parts that must sum to it)

    def __post_init__(self) -> None:
        if not self.date_column or not self.amount_columns or any(not c for c in self.amount_columns):
            raise ValueError(f"pool mapping {self.name!r}: date and amount columns must be named")
        if self.unit not in ("BTC", "sat"):
            raise ValueError(f"pool mapping {self.name!r}: unit {self.unit!r} is not BTC or sat")

    @property
    def columns(self) -> tuple[str, ...]:
        checked = () if self.total_check is None else (self.total_check[0], *self.total_check[1])
        return tuple(dict.fromkeys((*self.required, self.date_column, *self.amount_columns, *checked)))


_BRAIINS_PARTS = ("mining_reward", "bos_plus_reward", "referral_bonus", "referral_reward")
PRESETS: Mapping[str, PoolMapping] = {
    "braiins": PoolMapping(
        name="braiins",
        date_column="date",
        amount_columns=("mining_reward",),
        required=("date", "total_reward", *_BRAIINS_PARTS, "calculation_date"),
        total_check=("total_reward", _BRAIINS_PARTS),
    ),
    "f2pool": PoolMapping(
        name="f2pool",
        date_column="mining_date",
        amount_columns=("changed_balance",),
        required=(
            "changed_balance",
            "created_at",
            "mining_date",
            "settle_date",
            "pps",
            "pps_fee_rate",
            "tx_fee",
            "tx_fee_rate",
            "hash_rate",
        ),
        skip_when_date_empty=True,
    ),
    "ocean": PoolMapping(
        name="ocean",
        date_column="time",
        amount_columns=("earnings_btc",),
        required=("time", "block_height", "earnings_btc"),
        sum_per_day=True,
    ),
}


def generic_mapping(date_column: str, amount_column: str, unit: AmountUnit = "BTC") -> PoolMapping:
    return PoolMapping(name="generic", date_column=date_column, amount_columns=(amount_column,), unit=unit)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolEarnings:
    """Earnings per UTC day in BTC (exact to the satoshi), the lines each day came from, and how many
    non-mining rows were skipped."""

    preset: str
    paid_btc: Mapping[date, Decimal]
    lines: Mapping[date, tuple[int, ...]]
    skipped_rows: int


def _day(text: str, *, line: int, column: int, name: str) -> date:
    def refuse(why: str) -> ImportRefused:
        return ImportRefused(f"{text[:40]!r} {why}", line=line, column=column, column_name=name)

    if _EPOCH.match(text):
        if int(text) >= _MAX_EPOCH:
            raise refuse("is past 2100 as epoch seconds: milliseconds?")
        return datetime.fromtimestamp(int(text), UTC).date()
    try:
        if _ISO_DATE.match(text):
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise refuse("is not a date (YYYY-MM-DD, epoch seconds or ISO 8601 with offset)") from err
    if moment.tzinfo is None:
        raise refuse("has no UTC offset: which day is that?")
    return moment.astimezone(UTC).date()


def _btc(text: str, unit: AmountUnit, *, line: int, column: int, name: str) -> Decimal:
    value = parse_decimal(text, line=line, column=column, column_name=name)
    if value < 0:
        raise ImportRefused(f"negative earnings {text.strip()}", line=line, column=column, column_name=name)
    if unit == "sat":
        if value != value.to_integral_value():
            raise ImportRefused(
                f"{text.strip()} sat is not a whole satoshi", line=line, column=column, column_name=name
            )
        return (value * SAT).quantize(SAT)
    if value != value.quantize(SAT):
        raise ImportRefused(
            f"{text.strip()} BTC is finer than a satoshi", line=line, column=column, column_name=name
        )
    return value.quantize(SAT)


def _header(cells: list[str], mapping: PoolMapping) -> dict[str, int]:
    names: dict[str, int] = {}
    for i, raw in enumerate(cells):
        name = raw.strip()
        if not name:
            raise ImportRefused("empty column name", line=1, column=i + 1)
        if name in names:
            raise ImportRefused(f"column {name!r} appears twice", line=1, column=i + 1, column_name=name)
        names[name] = i
    for wanted in mapping.columns:
        if wanted not in names:
            shown = ", ".join(list(names)[:10])
            raise ImportRefused(
                f"no column {wanted!r}: is this a {mapping.name} export? (columns: {shown})", line=1
            )
    return names


def read_pool_csv(
    source: bytes | IO[bytes], mapping: PoolMapping, *, limits: CsvLimits | None = None
) -> PoolEarnings:
    """All days or nothing: any bad row raises `ImportRefused` naming its line and column."""
    rows = read_rows(source, limits or CsvLimits())
    first = next(rows, None)
    if first is None:
        raise ImportRefused("empty input: no header", line=1)
    names = _header(first[1], mapping)
    paid: dict[date, Decimal] = {}
    lines: dict[date, list[int]] = {}
    skipped = 0
    for line, cells in rows:
        if len(cells) != len(names):
            raise ImportRefused(f"{len(cells)} fields where the header has {len(names)}", line=line)

        def cell(name: str, cells: list[str] = cells) -> tuple[str, int]:
            return cells[names[name]].strip(), names[name] + 1

        date_text, date_col = cell(mapping.date_column)
        if not date_text and mapping.skip_when_date_empty:
            skipped += 1
            continue
        day = _day(date_text, line=line, column=date_col, name=mapping.date_column)
        amount = Decimal(0)
        for name in mapping.amount_columns:
            text, col = cell(name)
            amount += _btc(text, mapping.unit, line=line, column=col, name=name)
        if mapping.total_check is not None:
            total_name, parts = mapping.total_check
            total_text, total_col = cell(total_name)
            total = _btc(total_text, mapping.unit, line=line, column=total_col, name=total_name)
            summed = Decimal(0)
            for part in parts:
                text, col = cell(part)
                summed += _btc(text, mapping.unit, line=line, column=col, name=part)
            if summed != total:
                raise ImportRefused(
                    f"{total_name} {total} is not the sum of {', '.join(parts)} ({summed})",
                    line=line,
                    column=total_col,
                    column_name=total_name,
                )
        if day in paid and not mapping.sum_per_day:
            raise ImportRefused(
                f"duplicate day {day}: same as line {lines[day][0]}",
                line=line,
                column=date_col,
                column_name=mapping.date_column,
            )
        paid[day] = paid.get(day, Decimal(0)) + amount
        lines.setdefault(day, []).append(line)
    if not paid:
        raise ImportRefused("no earnings rows", line=None)
    ordered = sorted(paid)
    return PoolEarnings(
        preset=mapping.name,
        paid_btc={d: paid[d] for d in ordered},
        lines={d: tuple(lines[d]) for d in ordered},
        skipped_rows=skipped,
    )
