"""Price import: the real ERCOT grid file, the ERCOT settlement-point format across DST, the `ts,price` form,
and bad input - malformed, truncated, wrong unit, duplicated, hostile - refused whole, naming line and column.

The ERCOT-format inputs are built here (no real file in that format is in the shared data); the expected
UTC instants are written out by hand from the US DST rule, not computed with zoneinfo."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.energy.prices import read_ercot_spp, read_local_grid, read_ts_price
from gateway.energy.pricing import BillingPeriod, price_load
from gateway.energy.safe_csv import CsvLimits, ImportRefused
from gateway.energy.tariffs import RealTimeEnergy, Tariff
from gateway.energy.units import round_money

FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy"
GRID = FIXTURES / "prices" / "ercot_hb_south_15min_2024-06_2024-09.csv"
ERCOT_HEADER = ",".join(
    [
        "DeliveryDate",
        "DeliveryHour",
        "DeliveryInterval",
        "SettlementPointName",
        "SettlementPointType",
        "SettlementPointPrice",
        "DSTFlag",
    ]
)


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def ercot(rows: list[str], header: str = ERCOT_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def ercot_day(day: str, hours: list[tuple[int, str]], point: str = "HB_SOUTH") -> list[str]:
    """Rows for `day` (MM/DD/YYYY) in file order; price = the row's index, so order is checkable."""
    rows, n = [], 0
    for hour, flag in hours:
        for quarter in range(1, 5):
            rows.append(f"{day},{hour},{quarter},{point},HU,{n}.25,{flag}")
            n += 1
    return rows


SPRING = [(h, "N") for h in range(1, 25) if h != 3]  # 2024-03-10: no hour ending 03
AUTUMN = [(1, "N"), (2, "N"), (2, "Y"), *((h, "N") for h in range(3, 25))]  # hour ending 02 twice


def refused(call: object, *args: object, **kwargs: object) -> ImportRefused:
    assert callable(call)
    with pytest.raises(ImportRefused) as info:
        call(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------------- real file


def test_real_grid_file_imports_with_its_scarcity_peak_and_negative_prices() -> None:
    series = read_local_grid(GRID.read_bytes(), column="HB_SOUTH_RTM", tz="US/Central")
    assert len(series.starts) == 11_712
    assert series.starts[0] == z("2024-06-01T05:00")  # 00:00 CDT
    assert series.starts[-1] == z("2024-10-01T04:45")  # 2024-09-30 23:45 CDT
    assert series.starts == tuple(range(series.starts[0], series.starts[-1] + 900, 900))  # no gaps
    peak = max(series.prices_per_kwh)
    assert peak == Decimal("4.85782")  # $4,857.82/MWh
    assert series.starts[series.prices_per_kwh.index(peak)] == z("2024-08-21T00:30")  # 19:30 CDT on 08-20
    assert min(series.prices_per_kwh) < 0
    dam = read_local_grid(GRID.read_bytes(), column="HB_SOUTH_DAM", tz="America/Chicago")
    assert dam.prices_per_kwh[0] == Decimal("0.02457")


def test_real_prices_in_ercot_format_give_the_same_series() -> None:
    """The first real day rewritten as ERCOT rows (hour ending, interval) imports to the same prices."""
    lines = GRID.read_text().splitlines()[1:97]
    rows = []
    for i, line in enumerate(lines):
        _, _, rtm = line.split(",")
        rows.append(f"06/01/2024,{i // 4 + 1:02d},{i % 4 + 1},HB_SOUTH,HU,{rtm},N")
    from_ercot = read_ercot_spp(ercot(rows), complete_days=True)
    from_grid = read_local_grid(GRID.read_bytes(), column="HB_SOUTH_RTM")
    assert from_ercot.starts == from_grid.starts[:96]
    assert from_ercot.prices_per_kwh == from_grid.prices_per_kwh[:96]


# ------------------------------------------------------------------------------------- ERCOT across DST


def test_ercot_spring_day_has_92_intervals() -> None:
    series = read_ercot_spp(ercot(ercot_day("03/10/2024", SPRING)), complete_days=True)
    # 00:00 CST = 06:00Z; 23 hours of consecutive quarters with no hole where 02:00-03:00 never happened
    assert series.starts == tuple(range(z("2024-03-10T06:00"), z("2024-03-11T05:00"), 900))
    assert series.prices_per_kwh == tuple(Decimal(f"{n}.25") / 1000 for n in range(92))


def test_ercot_autumn_day_has_100_intervals_and_y_marks_the_repeated_standard_hour() -> None:
    series = read_ercot_spp(ercot(ercot_day("11/03/2024", AUTUMN)), complete_days=True)
    # 00:00 CDT = 05:00Z; 25 hours of consecutive quarters: HE02 N is 01:00 CDT (06:00Z), HE02 Y 01:00 CST
    assert series.starts == tuple(range(z("2024-11-03T05:00"), z("2024-11-04T06:00"), 900))
    assert series.prices_per_kwh == tuple(Decimal(f"{n}.25") / 1000 for n in range(100))
    # the file order may differ (all N rows first, then the Y hour): same result
    rows = ercot_day("11/03/2024", AUTUMN)
    assert read_ercot_spp(ercot(rows[:8] + rows[12:] + rows[8:12])) == series


def test_ercot_dst_mistakes_are_refused() -> None:
    bad_spring = ercot_day("03/10/2024", [(h, "N") for h in range(1, 25)])  # includes HE03
    err = refused(read_ercot_spp, ercot(bad_spring))
    assert (err.line, err.column_name) == (10, "DeliveryHour")
    assert "does not exist" in str(err)
    y_on_normal_hour = ercot_day("11/04/2024", [(1, "N"), (2, "Y")])
    err = refused(read_ercot_spp, ercot(y_on_normal_hour))
    assert (err.line, err.column, err.column_name) == (6, 7, "DSTFlag")
    twice_n = ercot_day("11/03/2024", [(1, "N"), (2, "N"), (2, "N")])
    err = refused(read_ercot_spp, ercot(twice_n))
    assert err.line == 10
    assert "duplicate interval: same as line 6" in str(err)


def test_ercot_incomplete_day_is_refused_when_days_must_be_whole() -> None:
    rows = ercot_day("11/03/2024", AUTUMN)[:-1]
    assert len(read_ercot_spp(ercot(rows)).starts) == 99  # a feed may deliver a day so far
    err = refused(read_ercot_spp, ercot(rows), complete_days=True)
    assert err.line == 2
    assert "99 intervals, expected 100" in str(err)


def test_ercot_settlement_point_choice() -> None:
    rows = ercot_day("06/01/2024", [(1, "N")]) + ercot_day("06/01/2024", [(1, "N")], point="LZ_HOUSTON")
    err = refused(read_ercot_spp, ercot(rows))
    assert (err.line, err.column_name) == (6, "SettlementPointName")
    houston = read_ercot_spp(ercot(rows), settlement_point="LZ_HOUSTON")
    assert houston.source == "ERCOT SPP LZ_HOUSTON"
    assert len(houston.starts) == 4
    # the API's ISO dates and a padded flag header, as seen in real ERCOT files, are read too
    iso = [r.replace("06/01/2024", "2024-06-01") for r in rows[:4]]
    assert read_ercot_spp(ercot(iso, ERCOT_HEADER.replace("DSTFlag", "DSTFlag    "))).starts == houston.starts


# ---------------------------------------------------------------------------------------- ts,price form


def test_ts_price_forms() -> None:
    body = (
        "ts,price_usd_per_mwh\n"
        "2024-06-01T00:00:00-05:00,24.57\n"
        "2024-06-01T05:15:00Z,-1.5\n"
        f"{z('2024-06-01T05:30')},4857.82\n"
    )
    series = read_ts_price(body.encode())
    assert series.starts == (z("2024-06-01T05:00"), z("2024-06-01T05:15"), z("2024-06-01T05:30"))
    assert series.prices_per_kwh == (Decimal("0.02457"), Decimal("-0.0015"), Decimal("4.85782"))
    kwh = read_ts_price(b"ts,price\n0,0.11\n3600,0.12\n", unit="$/kWh", interval_s=3600)
    assert kwh.prices_per_kwh == (Decimal("0.11"), Decimal("0.12"))


@pytest.mark.parametrize(
    ("body", "kwargs", "line", "column", "message"),
    [
        (b"ts,price\n0,1\n", {}, 1, 2, "does not say its unit"),
        (b"ts,price_cents_per_kwh\n0,11\n", {}, 1, 2, "unknown price column/unit"),
        (b"ts,price_usd_per_kwh\n0,48.5\n", {}, 2, 2, "wrong unit?"),  # that was $/MWh
        (b"ts,price_usd_per_mwh\n0,25000000\n", {}, 2, 2, "wrong unit?"),
        (b"ts,price_usd_per_mwh\n0,1\n", {"unit": "$/kWh"}, 1, 2, "header says $/MWh"),
        (b"ts,price_usd_per_mwh\n2024-06-01T00:00:00,1\n", {}, 2, 1, "no UTC offset"),
        (b"ts,price_usd_per_mwh\n1717218000000,1\n", {}, 2, 1, "milliseconds?"),
        (b"ts,price_usd_per_mwh\nyesterday,1\n", {}, 2, 1, "not ISO 8601"),
        (b"ts,price_usd_per_mwh\n0,1\n900,2\n0,3\n", {}, 4, 1, "same as line 2"),
        (b"ts,price_usd_per_mwh\n0,1\n900,2\n", {"interval_s": 3600}, 3, 1, "overlaps the one on line 2"),
        (b"ts,price_usd_per_mwh\n60,1\n", {}, 2, None, "15-minute instant"),
        (b'ts,price_usd_per_mwh\n0,"4,857.82"\n', {}, 2, 2, "not a plain decimal"),
        (b"ts,price_usd_per_mwh\n0,1e3\n", {}, 2, 2, "not a plain decimal"),
        (b"ts,price_usd_per_mwh\n0,1,2\n", {}, 2, None, "3 fields where the header has 2"),
        (b"ts,price_usd_per_mwh\n0,1\n\n900,2\n", {}, 3, None, "blank line"),
        (b'ts,price_usd_per_mwh\n0,"1\n', {}, 2, None, "malformed CSV"),
        (b"ts,price_usd_per_mwh\n0,\xff1\n", {}, 2, 2, "not UTF-8"),
        (b"ts,price_usd_per_mwh\n", {}, None, None, "no price rows"),
        (b"", {}, 1, None, "no header"),
    ],
)
def test_bad_ts_price_input_is_refused_naming_line_and_column(
    body: bytes, kwargs: dict[str, object], line: int | None, column: int | None, message: str
) -> None:
    err = refused(read_ts_price, body, **kwargs)
    assert (err.line, err.column) == (line, column)
    assert message in str(err)


# ------------------------------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    "cell", ["=cmd|' /C calc'!A0", '+HYPERLINK("http://x")', "@SUM(1+1)", "-cmd|x", "\tx", "=1+2"]
)
def test_formula_injection_is_refused_wherever_it_appears(cell: str) -> None:
    quoted = '"' + cell.replace('"', '""') + '"'
    rows = ercot_day("06/01/2024", [(1, "N")])
    rows[2] = rows[2].replace("HB_SOUTH", quoted)
    err = refused(read_ercot_spp, ercot(rows))
    assert (err.line, err.column, err.column_name) == (4, 4, "SettlementPointName")
    assert "formula" in str(err) or "control character" in str(err)
    err = refused(read_ts_price, f"ts,price_usd_per_mwh\n0,{quoted}\n".encode())
    assert (err.line, err.column) == (2, 2)


def test_a_million_columns_is_refused_on_its_line() -> None:
    wide = b"ts,price_usd_per_mwh\n0,1\n" + b",".join([b"1"] * 10**6) + b"\n"
    err = refused(read_ts_price, wide)
    assert err.line == 3 and "longer than 4096 bytes" in str(err)
    # with a line limit large enough for it, the column limit still stops it before the split
    err = refused(read_ts_price, wide, limits=CsvLimits(max_line_bytes=4 * 10**6))
    assert err.line == 3 and "more than 64 columns" in str(err)


class EndlessLine(io.RawIOBase):
    """A header, then one line that never ends: stands in for a 1 GB line without allocating it."""

    def __init__(self, head: bytes) -> None:
        self.head, self.served = head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = len(buffer)
        start = self.head[self.served : self.served + n]
        chunk = start + b"7" * (n - len(start))
        buffer[:n] = chunk
        self.served += n
        return n


def test_a_gigabyte_line_is_refused_after_reading_only_the_limit() -> None:
    stream = EndlessLine(b"ts,price_usd_per_mwh\n")
    err = refused(read_ts_price, io.BufferedReader(stream))
    assert err.line == 2 and "longer than 4096 bytes" in str(err)
    assert stream.served < 64 * 1024  # a few buffers, not a gigabyte


def test_field_row_and_size_limits() -> None:
    long_name = "A" * 300
    rows = ercot_day("06/01/2024", [(1, "N")])
    rows[0] = rows[0].replace("HB_SOUTH", long_name)
    err = refused(read_ercot_spp, ercot(rows))
    assert (err.line, err.column) == (2, 4) and "exceeds the limit of 256" in str(err)
    body = ercot(ercot_day("06/01/2024", [(1, "N"), (2, "N")]))
    assert refused(read_ercot_spp, body, limits=CsvLimits(max_rows=5)).line == 7
    assert "bytes" in str(refused(read_ercot_spp, body, limits=CsvLimits(max_bytes=200)))


def test_truncated_file_is_refused_and_nothing_is_returned() -> None:
    body = ercot(ercot_day("06/01/2024", [(1, "N"), (2, "N")]))
    cut = body[: body.rindex(b",") + 1]  # mid-record, as a dropped download ends
    err = refused(read_ercot_spp, cut)
    assert err.line == 9 and "truncated" in str(err)
    cut_after_price = body[:-3]  # ends inside ",N\n": the row would even parse without the terminator check
    assert "truncated" in str(refused(read_ercot_spp, cut_after_price))


@pytest.mark.parametrize(
    ("old", "new", "column", "message"),
    [
        ("06/01/2024,1,1", "13/45/2024,1,1", 1, "not a date"),
        ("06/01/2024,1,1", "06/01/2024,25,1", 2, "not an integer 1-24"),
        ("06/01/2024,1,1", "06/01/2024,1,5", 3, "not an integer 1-4"),
        (",HU,", ",H U,", 5, "not a settlement point type"),
        (",0.25,N", ",0.25,X", 7, "not Y or N"),
        (",0.25,N", ",,N", 6, "empty is not a plain decimal"),
        (",0.25,N", ",25000000,N", 6, "wrong unit?"),
    ],
)
def test_malformed_ercot_rows(old: str, new: str, column: int, message: str) -> None:
    rows = ercot_day("06/01/2024", [(1, "N")])
    rows[0] = rows[0].replace(old, new)
    err = refused(read_ercot_spp, ercot(rows))
    assert (err.line, err.column) == (2, column)
    assert message in str(err)


def test_ercot_header_problems() -> None:
    assert "missing ERCOT column 'DSTFlag'" in str(refused(read_ercot_spp, ercot([], ERCOT_HEADER[:-8])))
    err = refused(read_ercot_spp, ercot([], ERCOT_HEADER + ",Extra"))
    assert (err.line, err.column, err.column_name) == (1, 8, "Extra")
    err = refused(read_ercot_spp, ercot([], ERCOT_HEADER + ",DSTFlag"))
    assert "appears twice" in str(err)


def test_local_grid_dst_and_duplicates() -> None:
    head = "interval_start_local,P\n"
    # autumn: 01:00 twice is the daylight then the standard hour; a third time is a duplicate
    twice = head + "2024-11-03 01:00:00,1\n2024-11-03 01:00:00,2\n"
    assert read_local_grid(twice.encode(), column="P").starts == (
        z("2024-11-03T06:00"),
        z("2024-11-03T07:00"),
    )
    err = refused(read_local_grid, (twice + "2024-11-03 01:00:00,3\n").encode(), column="P")
    assert (err.line, err.column) == (4, 1) and "duplicate" in str(err)
    err = refused(
        read_local_grid, (head + "2024-06-01 00:00:00,1\n2024-06-01 00:00:00,1\n").encode(), column="P"
    )
    assert err.line == 3
    err = refused(read_local_grid, (head + "2024-03-10 02:15:00,1\n").encode(), column="P")
    assert err.line == 2 and "does not exist" in str(err)
    err = refused(read_local_grid, (head + "2024-06-01T00:00:00-05:00,1\n").encode(), column="P")
    assert "naive local time" in str(err)
    assert "no column 'Q'" in str(
        refused(read_local_grid, (head + "2024-06-01 00:00,1\n").encode(), column="Q")
    )


def test_real_time_tariff_on_the_real_scarcity_day() -> None:
    """1,000 kW through 2024-08-20 (CDT) under the real HB_SOUTH real-time prices.

    The 19:30 interval alone: 1,000 kW x 0.25 h = 250 kWh x $4.85782/kWh = $1,214.455 -> $1,214.46
    (half-to-even: 1,214.455 rounds to the even 6). The day: 0.25 MWh x the sum of the day's 96 $/MWh
    prices, summed here from the file's text with Fractions, rounded once."""
    series = read_local_grid(GRID.read_bytes(), column="HB_SOUTH_RTM")
    tariff = Tariff(name="ERCOT RT", energy=RealTimeEnergy(prices=series), valid_from=series.starts[0])
    chicago = ZoneInfo("America/Chicago")
    spike = int(datetime(2024, 8, 20, 19, 30, tzinfo=chicago).timestamp())
    one = price_load(
        tariff, [(spike, 1000 * 900_000)], period=BillingPeriod(start=spike, end=spike + 900), tz=chicago
    )
    assert one.total == Decimal("1214.46")
    midnight = int(datetime(2024, 8, 20, tzinfo=chicago).timestamp())
    day = BillingPeriod(start=midnight, end=midnight + 86400)
    bill = price_load(
        tariff, [(t, 1000 * 900_000) for t in range(day.start, day.end, 900)], period=day, tz=chicago
    )
    rows = [line.split(",") for line in GRID.read_text().splitlines() if line.startswith("2024-08-20 ")]
    assert len(rows) == 96
    exact = sum((Fraction(Decimal(rtm)) / 4 for _, _, rtm in rows), Fraction(0))  # 0.25 MWh each
    assert bill.lines[0].exact_amount == exact
    assert bill.total == round_money(exact)
