"""Pool reconciliation (pure): what FPPS should have paid per day against what the pool credited.

FPPS pays for hashrate, not for luck: expected BTC for a day = our average hashrate that day (TH/s, from
telemetry) x hashprice (BTC per TH/s per day, subsidy + fees) x (1 - pool fee). The pool measures our
hashrate from accepted shares, which differs from the miners' own counters by share variance and stale
or rejected work, so a percent or two either way is normal; the default tolerance (2 %) reflects that.
Both directions count as "beyond tolerance" (an overpayment is as much a sign of wrong inputs as an
underpayment), and the report says which way each day went.

Everything is exact (`Fraction`) and each expected figure is rounded once, half-even, to the satoshi.
The caller supplies day keys in the pool's day convention (UTC days for Braiins and F2Pool).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from gateway.energy.reconcile import DayStatus
from gateway.energy.settlement_model import round_half_even

__all__ = ["DEFAULT_POOL_TOLERANCE_PCT", "PoolDayRow", "PoolReport", "expected_fpps_btc", "reconcile_pool"]

DEFAULT_POOL_TOLERANCE_PCT = Decimal("2.0")


def _decimal(name: str, value: object, *, low: Decimal | None = None, high: Decimal | None = None) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite decimal.Decimal, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} = {value} is outside {low}..{high}")
    return value


def expected_fpps_btc(
    hashrate_ths: Decimal, hashprice_btc_per_th_day: Decimal, pool_fee_pct: Decimal
) -> Decimal:
    """One day's FPPS earnings in BTC, rounded once to the satoshi (half-even)."""
    _decimal("hashrate_ths", hashrate_ths, low=Decimal(0))
    _decimal("hashprice_btc_per_th_day", hashprice_btc_per_th_day, low=Decimal(0))
    _decimal("pool_fee_pct", pool_fee_pct, low=Decimal(0), high=Decimal(100))
    exact = Fraction(hashrate_ths) * Fraction(hashprice_btc_per_th_day) * (1 - Fraction(pool_fee_pct) / 100)
    return round_half_even(exact, 8)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolDayRow:
    day: date
    hashrate_ths: Decimal | None
    hashprice_btc_per_th_day: Decimal | None
    expected_btc: Decimal | None
    paid_btc: Decimal | None
    diff_btc: Decimal | None  # paid - expected
    diff_pct: Decimal | None  # of expected, 3 places (display)
    status: DayStatus
    note: str

    def cells(self) -> dict[str, str]:
        def text(value: Decimal | None) -> str:
            return "" if value is None else f"{value:f}"  # never "5.0E-7"

        return {
            "day": self.day.isoformat(),
            "hashrate_ths": text(self.hashrate_ths),
            "hashprice_btc_per_th_day": text(self.hashprice_btc_per_th_day),
            "expected_btc": text(self.expected_btc),
            "paid_btc": text(self.paid_btc),
            "diff_btc": text(self.diff_btc),
            "diff_pct": text(self.diff_pct),
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolReport:
    pool: str
    pool_fee_pct: Decimal
    tolerance_pct: Decimal
    rows: tuple[PoolDayRow, ...]
    expected_btc: Decimal  # over compared days
    paid_btc: Decimal

    @property
    def failed(self) -> tuple[PoolDayRow, ...]:
        return tuple(r for r in self.rows if r.status == "fail")

    def count(self, status: DayStatus) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def period(self) -> tuple[date, date]:
        return self.rows[0].day, self.rows[-1].day

    @property
    def total_diff_pct(self) -> Decimal | None:
        if not self.expected_btc:
            return None
        return round_half_even(
            Fraction(self.paid_btc - self.expected_btc) * 100 / Fraction(self.expected_btc), 3
        )

    def summary(self) -> dict[str, Any]:
        first, last = self.period
        pct = self.total_diff_pct
        return {
            "kind": "pool",
            "pool": self.pool,
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "pool_fee_pct": str(self.pool_fee_pct),
            "tolerance_pct": str(self.tolerance_pct),
            "days": len(self.rows),
            "pass": self.count("pass"),
            "fail": self.count("fail"),
            "missing": self.count("missing"),
            "compared_expected_btc": f"{self.expected_btc:f}",
            "compared_paid_btc": f"{self.paid_btc:f}",
            "compared_diff_btc": f"{self.paid_btc - self.expected_btc:f}",
            "compared_diff_pct": "" if pct is None else str(pct),
        }

    def summary_line(self) -> str:
        s = self.summary()
        return (
            f"pool {s['pool']} {s['first_day']}..{s['last_day']}: {s['fail']} of {s['days']} days beyond "
            f"{s['tolerance_pct']} % ({s['missing']} not compared); paid - expected "
            f"{s['compared_diff_btc']} BTC ({s['compared_diff_pct'] or '-'} %)"
        )


def _row(
    day: date,
    paid: Decimal | None,
    hashrate: Decimal | None,
    hashprice: Decimal | None,
    fee_pct: Decimal,
    tolerance: Decimal,
) -> PoolDayRow:
    expected = None
    if hashrate is not None and hashprice is not None:
        expected = expected_fpps_btc(hashrate, hashprice, fee_pct)
    diff = None if expected is None or paid is None else paid - expected
    pct = None
    if diff is not None and expected:
        pct = round_half_even(Fraction(diff) * 100 / Fraction(expected), 3)
    status: DayStatus
    if diff is None or expected is None:
        lacking = [
            what
            for what, value in (("pool payment", paid), ("hashrate", hashrate), ("hashprice", hashprice))
            if value is None
        ]
        status, note = "missing", "no " + ", ".join(lacking)
    elif abs(Fraction(diff)) * 100 <= Fraction(tolerance) * Fraction(expected):
        status, note = "pass", ""
    else:
        status, note = "fail", "underpaid" if diff < 0 else "overpaid"
    return PoolDayRow(
        day=day,
        hashrate_ths=hashrate,
        hashprice_btc_per_th_day=hashprice,
        expected_btc=expected,
        paid_btc=paid,
        diff_btc=diff,
        diff_pct=pct,
        status=status,
        note=note,
    )


def reconcile_pool(
    paid_btc: Mapping[date, Decimal],
    hashrate_ths: Mapping[date, Decimal],
    hashprice_btc_per_th_day: Mapping[date, Decimal],
    *,
    pool: str,
    pool_fee_pct: Decimal,
    tolerance_pct: Decimal = DEFAULT_POOL_TOLERANCE_PCT,
) -> PoolReport:
    """Per-day expected vs paid over the days the pool paid or we hashed, and totals over compared days."""
    _decimal("pool_fee_pct", pool_fee_pct, low=Decimal(0), high=Decimal(100))
    _decimal("tolerance_pct", tolerance_pct, low=Decimal(0))
    for name, series in (("paid_btc", paid_btc), ("hashrate_ths", hashrate_ths)):
        for day, value in series.items():
            _decimal(f"{name}[{day}]", value, low=Decimal(0))
    days = sorted(set(paid_btc) | set(hashrate_ths))
    if not days:
        raise ValueError("nothing to reconcile: no days on either side")
    rows = tuple(
        _row(
            day,
            paid_btc.get(day),
            hashrate_ths.get(day),
            hashprice_btc_per_th_day.get(day),
            pool_fee_pct,
            tolerance_pct,
        )
        for day in days
    )
    compared = [r for r in rows if r.status != "missing"]
    return PoolReport(
        pool=pool,
        pool_fee_pct=pool_fee_pct,
        tolerance_pct=tolerance_pct,
        rows=rows,
        expected_btc=sum((r.expected_btc or Decimal(0) for r in compared), Decimal(0)),
        paid_btc=sum((r.paid_btc or Decimal(0) for r in compared), Decimal(0)),
    )
