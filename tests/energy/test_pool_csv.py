"""Pool earnings import: the four mapping presets on our hand-written example exports (fixtures README),
exact BTC to the satoshi, and bad input - malformed, truncated, duplicated day, inconsistent totals, wrong
file for the preset, hostile, oversized - refused whole with line and column."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.energy.pool_csv import PRESETS, generic_mapping, read_pool_csv
from gateway.energy.safe_csv import CsvLimits, ImportRefused

FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy" / "reconcile"
DAYS = [date(2024, 11, 2), date(2024, 11, 3), date(2024, 11, 4)]
PAID = [Decimal("0.00048700"), Decimal("0.00048810"), Decimal("0.00046000")]


@pytest.mark.parametrize(
    ("file", "mapping"),
    [
        ("braiins_daily_rewards.csv", PRESETS["braiins"]),
        ("f2pool_transactions.csv", PRESETS["f2pool"]),
        ("ocean_earnings.csv", PRESETS["ocean"]),
        ("generic_sats.csv", generic_mapping("Day", "Credited (sat)", "sat")),
    ],
)
def test_every_preset_reads_the_same_three_days(file: str, mapping: object) -> None:
    earnings = read_pool_csv((FIXTURES / file).read_bytes(), mapping)  # type: ignore[arg-type]
    assert list(earnings.paid_btc.items()) == list(zip(DAYS, PAID, strict=True))
    assert all(v.as_tuple().exponent == -8 for v in earnings.paid_btc.values())  # to the satoshi


def test_f2pool_skips_payout_rows_and_ocean_sums_blocks() -> None:
    f2 = read_pool_csv((FIXTURES / "f2pool_transactions.csv").read_bytes(), PRESETS["f2pool"])
    assert f2.skipped_rows == 1
    ocean = read_pool_csv((FIXTURES / "ocean_earnings.csv").read_bytes(), PRESETS["ocean"])
    assert ocean.lines[DAYS[0]] == (2, 3) and ocean.lines[DAYS[2]] == (5, 6)


def test_amounts_are_exact_decimal_btc() -> None:
    m = generic_mapping("date", "btc")
    got = read_pool_csv(b"date,btc\n2024-01-01,0.1\n2024-01-02,21\n", m).paid_btc
    assert got == {date(2024, 1, 1): Decimal("0.10000000"), date(2024, 1, 2): Decimal("21.00000000")}
    assert all(isinstance(v, Decimal) for v in got.values())
    sats = read_pool_csv(b"date,s\n2024-01-01,1\n", generic_mapping("date", "s", "sat")).paid_btc
    assert sats == {date(2024, 1, 1): Decimal("0.00000001")}


def test_dates_in_every_accepted_form() -> None:
    m = generic_mapping("when", "btc")
    data = b"when,btc\n2024-01-01,1\n1704153600,1\n2024-01-03T23:30:00-02:00,1\n"
    assert list(read_pool_csv(data, m).paid_btc) == [date(2024, 1, 1), date(2024, 1, 2), date(2024, 1, 4)]


def refused(data: bytes, mapping: object, **kw: object) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        read_pool_csv(data, mapping, **kw)  # type: ignore[arg-type]
    return info.value


GENERIC = generic_mapping("date", "btc")


@pytest.mark.parametrize(
    ("data", "where", "reason"),
    [
        (b"date,btc\n2024-01-01,1\n2024-01-01,1\n", "line 3, column 1 (date)", "duplicate day"),
        (b"date,btc\n2024-01-01,0.000000001\n", "line 2, column 2 (btc)", "finer than a satoshi"),
        (b"date,btc\n2024-01-01,-1\n", "line 2, column 2 (btc)", "negative earnings"),
        (b"date,btc\n2024-01-01,1e3\n", "line 2, column 2 (btc)", "not a plain decimal"),
        (b"date,btc\n2024-01-01 10:00,1\n", "line 2, column 1 (date)", "no UTC offset"),
        (b"date,btc\n1704153600000,1\n", "line 2, column 1 (date)", "milliseconds"),
        (b"date,btc\nsoon,1\n", "line 2, column 1 (date)", "is not a date"),
        (b"date,btc\n2024-01-01,1\n2024-01-02", "line 3", "truncated"),
        (b'date,btc\n2024-01-01,"=HYPERLINK(""http://evil"",""x"")"\n', "line 2, column 2 (btc)", "formula"),
        (b"date,btc\n+cmd|' /C calc'!A0,1\n", "line 2, column 1 (date)", "formula"),
        (b"date,btc\n2024-01-01\n", "line 2", "1 fields where the header has 2"),
        (b"date,amount\n2024-01-01,1\n", "line 1", "no column 'btc'"),
        (b"date,btc\n", None, "no earnings rows"),
        (b"", "line 1", "empty input"),
    ],
)
def test_bad_input_is_refused_with_line_and_column(data: bytes, where: str | None, reason: str) -> None:
    err = refused(data, GENERIC)
    assert reason in str(err)
    if where:
        assert str(err).startswith(where + ":")


def test_generic_sat_must_be_whole() -> None:
    err = refused(b"date,s\n2024-01-01,1.5\n", generic_mapping("date", "s", "sat"))
    assert (err.line, err.column) == (2, 2) and "whole satoshi" in str(err)


def test_wrong_export_for_the_preset_fails_at_the_header() -> None:
    braiins = (FIXTURES / "braiins_daily_rewards.csv").read_bytes()
    err = refused(braiins, PRESETS["f2pool"])
    assert err.line == 1 and "is this a f2pool export?" in str(err)


def test_braiins_total_must_equal_its_parts() -> None:
    text = (FIXTURES / "braiins_daily_rewards.csv").read_text().replace("0.00049310", "0.00049311")
    err = refused(text.encode(), PRESETS["braiins"])
    assert (err.line, err.column, err.column_name) == (3, 2, "total_reward") and "not the sum" in str(err)


def test_f2pool_duplicate_mining_day_is_refused() -> None:
    lines = (FIXTURES / "f2pool_transactions.csv").read_text().splitlines()
    err = refused(("\n".join([*lines, lines[1]]) + "\n").encode(), PRESETS["f2pool"])
    assert err.line == 6 and "duplicate day 2024-11-02: same as line 2" in str(err)


def test_huge_column_counts_and_lines_and_sizes_are_refused() -> None:
    err = refused(b"date,btc" + b",x" * 1_000_000 + b"\n", GENERIC, limits=CsvLimits(max_line_bytes=1 << 22))
    assert err.line == 1 and "columns" in str(err)
    stream = io.BytesIO(b"date,btc\n2024-01-01," + b"1" * (1 << 20) + b"\n")
    err = refused(stream, GENERIC)  # type: ignore[arg-type]
    assert err.line == 2 and "longer than" in str(err)
    many = b"date,btc\n" + b"".join(f"2024-01-{d:02d},1\n".encode() for d in range(1, 29))
    err = refused(many, GENERIC, limits=CsvLimits(max_bytes=100))
    assert "exceeds 100 bytes" in str(err)


def test_mapping_is_checked() -> None:
    with pytest.raises(ValueError, match="unit 'mBTC'"):
        generic_mapping("d", "a", "mBTC")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be named"):
        generic_mapping("", "a")
