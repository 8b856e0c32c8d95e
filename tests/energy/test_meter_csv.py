"""Utility-meter CSV import: interval and register files through a mapping, local time across DST, and bad
input (malformed, truncated, wrong unit, duplicated, backwards register, hostile, oversized) refused whole,
naming line and column. Expected instants are written out by hand from the US DST rule."""

from __future__ import annotations

import io
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.energy.meter_csv import MeterMapping, read_meter_csv, read_metered_csv
from gateway.energy.safe_csv import CsvLimits, ImportRefused

SITE_TZ = "America/Chicago"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy" / "reconcile"
KWH = 3_600_000


def z(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def mapping(**overrides: object) -> MeterMapping:
    base: dict[str, object] = {
        "time_column": "ts",
        "value_column": "kwh",
        "unit": "kWh",
        "kind": "interval",
        "interval_s": 3600,
        "tz": "America/Chicago",
    }
    return MeterMapping.from_dict({**base, **overrides})


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def refused(source: bytes | io.BytesIO, m: MeterMapping, **kwargs: object) -> ImportRefused:
    with pytest.raises(ImportRefused) as info:
        read_meter_csv(source, m, **({"site_tz": SITE_TZ} | kwargs))  # type: ignore[arg-type]
    return info.value


# --------------------------------------------------------------------------------------------- fixtures


def test_hourly_fixture_across_fall_back_has_25_hours_on_the_long_day() -> None:
    m = MeterMapping.from_dict(tomllib.loads((FIXTURES / "meter_mapping_chicago.toml").read_text()))
    intervals = read_meter_csv(
        (FIXTURES / "meter_interval_hourly_chicago.csv").read_bytes(), m, site_tz=SITE_TZ
    )
    assert len(intervals) == 24 + 25 + 24
    assert intervals[0].start == z("2024-11-02T05:00")  # 00:00 CDT
    assert intervals[-1].end == z("2024-11-05T06:00")  # 2024-11-05 00:00 CST
    starts = [i.start for i in intervals]
    assert starts == list(range(starts[0], starts[-1] + 3600, 3600))  # gapless, the repeated 01:00 included
    # the two "11/03/2024 01:00" rows: 06:00 UTC (CDT) on line 27, 07:00 UTC (CST) on line 28
    assert [
        (i.start, i.line) for i in intervals if i.start in (z("2024-11-03T06:00"), z("2024-11-03T07:00"))
    ] == [
        (z("2024-11-03T06:00"), 27),
        (z("2024-11-03T07:00"), 28),
    ]
    assert {i.energy_j for i in intervals} == {1000 * KWH}


def test_register_fixture_gives_differences_of_consecutive_readings() -> None:
    m = mapping(time_column="read_time", value_column="register_kwh", kind="register")
    intervals = read_meter_csv((FIXTURES / "meter_register_daily.csv").read_bytes(), m, site_tz=SITE_TZ)
    assert [(i.start, i.end, i.energy_j, i.line) for i in intervals] == [
        (z("2024-11-02T05:00"), z("2024-11-03T05:00"), 24_000 * KWH, 3),
        (z("2024-11-03T05:00"), z("2024-11-04T06:00"), 25_000 * KWH, 4),
        (z("2024-11-04T06:00"), z("2024-11-05T06:00"), 24_000 * KWH, 5),
    ]


def test_time_marks_end_and_units_and_epoch() -> None:
    m = mapping(time_format="epoch", time_marks="end", unit="Wh", value_column="energy_wh", interval_s=900)
    out = read_meter_csv(csv_bytes("ts,energy_wh", f"{z('2024-01-01T00:15')},2500.5"), m, site_tz=SITE_TZ)
    assert (out[0].start, out[0].end, out[0].energy_j) == (
        z("2024-01-01T00:00"),
        z("2024-01-01T00:15"),
        9_001_800,
    )
    mwh = mapping(unit="MWh", value_column="mwh")
    assert (
        read_meter_csv(csv_bytes("ts,mwh", "2024-01-01 00:00,1.25"), mwh, site_tz=SITE_TZ)[0].energy_j
        == 1250 * KWH
    )


def test_metered_csv_reads_our_figures_exactly() -> None:
    days = read_metered_csv((FIXTURES / "metered_daily.csv").read_bytes())
    assert [(str(d), v.energy_j, str(v.coverage_pct)) for d, v in days.items()] == [
        ("2024-11-02", 24_010 * KWH, "100"),
        ("2024-11-03", 25_000 * KWH, "99.8"),
        ("2024-11-04", 23_800 * KWH, "100"),
    ]


# ------------------------------------------------------------------------------------------- bad input


def test_mapping_errors_name_the_key() -> None:
    for overrides, key in (
        ({"unit": "kW"}, "mapping.unit"),
        ({"kind": "cumulative"}, "mapping.kind"),
        ({"interval_s": 7}, "mapping.interval_s"),
        ({"tz": "Mars/Olympus"}, "Mars/Olympus"),
        ({"colour": "red"}, "mapping.colour"),
        ({"interval_s": "900"}, "mapping.interval_s"),
        ({"value_column": "ts"}, "mapping.value_column"),
    ):
        with pytest.raises(ValueError, match=key):
            mapping(**overrides)
    with pytest.raises(ValueError, match=r"mapping\.kind: required"):
        MeterMapping.from_dict({"time_column": "a", "value_column": "b", "unit": "kWh"})


@pytest.mark.parametrize(
    ("lines", "where", "reason"),
    [
        (("ts,kwh", "2024-01-01 00:00,1", "2024-01-01 00:00,1"), "line 3, column 1 (ts)", "duplicate time"),
        (("ts,kwh", "2024-01-01 00:00,1", "2024-01-01 00:30,1"), "line 3", "overlaps"),
        (("ts,kwh", "2024-01-01 00:00,abc"), "line 2, column 2 (kwh)", "not a plain decimal"),
        (("ts,kwh", "2024-01-01 00:00,-1"), "line 2, column 2 (kwh)", "negative energy"),
        (("ts,kwh", "2024-01-01 00:00,0.000001"), "line 2, column 2 (kwh)", "finer than 1 J"),
        (("ts,kwh", "yesterday,1"), "line 2, column 1 (ts)", "does not match time format"),
        (("ts,kwh", "2024-03-10 02:00,1"), "line 2, column 1 (ts)", "does not exist in America/Chicago"),
        (("ts,kwh", "2024-01-01 00:00:00.5,1"), "line 2, column 1 (ts)", "whole second"),
        (("ts,kwh", "2024-01-01 00:00,1,2"), "line 2", "3 fields where the header has 2"),
        (("ts,kwh", "2024-01-01 00:00,1", ""), "line 3", "blank line"),
        (("time,kwh", "2024-01-01 00:00,1"), "line 1", "no column 'ts'"),
        (("ts,kwh,kwh", "2024-01-01 00:00,1,1"), "line 1, column 3 (kwh)", "appears twice"),
        (("ts,kwh", '2024-01-01 00:00,=HYPERLINK("http://x")'), "line 2, column 2 (kwh)", "formula"),
        (("ts,kwh", "@SUM(A1),1"), "line 2, column 1 (ts)", "formula"),
        (("ts,kwh",), None, "no data rows"),
    ],
)
def test_bad_rows_are_refused_naming_line_and_column(
    lines: tuple[str, ...], where: str | None, reason: str
) -> None:
    err = refused(csv_bytes(*lines), mapping())
    assert reason in str(err)
    if where:
        assert str(err).startswith(where + ":")


def test_the_third_occurrence_of_a_repeated_fall_back_hour_is_a_duplicate() -> None:
    rows = ["ts,kwh", *["2024-11-03 01:00,1"] * 3]
    err = refused(csv_bytes(*rows), mapping())
    assert (err.line, err.column) == (4, 1)


def test_truncated_file_is_refused_and_nothing_returned() -> None:
    data = csv_bytes("ts,kwh", "2024-01-01 00:00,1", "2024-01-01 01:00,1")[:-3]
    err = refused(data, mapping())
    assert err.line == 3 and "truncated" in str(err)
    assert refused(b"", mapping()).line == 1


def test_wrong_unit_in_the_header_or_by_magnitude() -> None:
    err = refused(csv_bytes("ts,energy_mwh", "2024-01-01 00:00,1"), mapping(value_column="energy_mwh"))
    assert (err.line, err.column) == (1, 2) and "wrong unit" in str(err)
    # 5,000,000 "MWh" in one hour is 5 TW: a Wh column declared as MWh
    err = refused(csv_bytes("ts,v", "2024-01-01 00:00,5000000"), mapping(unit="MWh", value_column="v"))
    assert (err.line, err.column) == (2, 2) and "wrong unit" in str(err)


def test_register_going_backwards_is_refused_with_both_lines() -> None:
    m = mapping(kind="register", value_column="reading_kwh")
    data = csv_bytes(
        "ts,reading_kwh", "2024-01-01 00:00,99990", "2024-01-02 00:00,99999", "2024-01-03 00:00,12"
    )
    err = refused(data, m)
    assert err.line == 4 and "went backwards" in str(err) and "line 3" in str(err)
    assert "at least two readings" in str(refused(csv_bytes("ts,reading_kwh", "2024-01-01 00:00,1"), m))


def test_million_columns_refused_before_splitting() -> None:
    header = "ts,kwh," + ",".join(f"c{i}" for i in range(1_000_000))
    err = refused(csv_bytes(header[:4000], "x"), mapping())  # a short line still counts its columns
    assert "columns" in str(err) and err.line == 1
    wide = ("a," * 1_000_000 + "b\n").encode()
    err = refused(wide, mapping(), limits=CsvLimits(max_line_bytes=4 * 1024 * 1024))
    assert "more than 64 columns" in str(err) and err.line == 1


class _Endless(io.RawIOBase):
    """A 1 GB line that is never materialized: bytes are produced only as the reader asks for them."""

    def __init__(self, prefix: bytes, size: int) -> None:
        self.prefix, self.left, self.served = prefix, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        chunk = (self.prefix + b"7" * n)[:n]
        self.prefix = self.prefix[n:]
        buffer[:n] = chunk
        self.left -= n
        self.served += n
        return n


def test_a_one_gigabyte_line_is_refused_after_reading_only_the_line_cap() -> None:
    raw = _Endless(b"ts,kwh\n2024-01-01 00:00,", 1 << 30)
    err = refused(io.BufferedReader(raw), mapping())  # type: ignore[arg-type]
    assert err.line == 2 and "longer than 4096 bytes" in str(err)
    assert raw.served < 1 << 20  # the rest of the gigabyte was never read


def test_oversized_input_is_refused() -> None:
    rows = ["ts,kwh", *(f"2024-01-01 {h:02d}:00,1" for h in range(24))]
    err = refused(csv_bytes(*rows), mapping(), limits=CsvLimits(max_bytes=200))
    assert "exceeds 200 bytes" in str(err)
    err = refused(csv_bytes(*rows), mapping(), limits=CsvLimits(max_rows=5))
    assert "more than 5 rows" in str(err)


def test_metered_csv_bad_input() -> None:
    for text, reason in (
        ("day,kwh\n2024-01-01,1\n", "header must be day,kwh,coverage_pct"),
        ("day,kwh,coverage_pct\n2024-01-01,1,100\n2024-01-01,1,100\n", "line 3, column 1 (day): duplicate"),
        ("day,kwh,coverage_pct\n2024-01-01,1,101\n", "line 2, column 3 (coverage_pct)"),
        ("day,kwh,coverage_pct\n2024-01-01,0.0000001,100\n", "finer than 1 J"),
        ("day,kwh,coverage_pct\n01/01/2024,1,100\n", "not a YYYY-MM-DD day"),
    ):
        with pytest.raises(ImportRefused, match=re.escape(reason)):
            read_metered_csv(text.encode())


def test_naive_times_use_the_mapping_zone_else_the_site_zone_never_a_silent_utc() -> None:
    """Finding D: the mapping's tz only reads naive times, and defaults to the site's zone."""
    m = MeterMapping.from_dict(
        {"time_column": "ts", "value_column": "kwh", "unit": "kWh", "kind": "interval"}
    )
    assert m.tz is None
    data = csv_bytes("ts,kwh", "2024-07-01 00:00,1")
    chicago = read_meter_csv(data, m, site_tz="America/Chicago")[0].start
    assert chicago == z("2024-07-01T05:00")  # CDT is UTC-5
    la = MeterMapping.from_dict(
        {
            "time_column": "ts",
            "value_column": "kwh",
            "unit": "kWh",
            "kind": "interval",
            "tz": "America/Los_Angeles",
        }
    )
    assert read_meter_csv(data, la, site_tz="America/Chicago")[0].start == z("2024-07-01T07:00")
    err = refused(data, m, site_tz=None)
    assert str(err).startswith("line 2, column 1 (ts): ") and "no zone is known: set mapping.tz" in str(err)
    offsets = csv_bytes("ts,kwh", "2024-07-01T00:00:00+00:00,1")
    assert read_meter_csv(offsets, m)[0].start == z("2024-07-01T00:00")  # exact times need no zone
