"""`hashinsight reconcile meter | pool` end to end on real files, a real state.db and the real site key:
the report, the dispute package and ticket, and one-line errors with exit 1 (bad input) or 2 (usage)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.energy.evidence_package import verify_evidence_zip
from gateway.site_key import load_or_create_site_key

CHICAGO = ZoneInfo("America/Chicago")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy" / "reconcile"
METER = [
    "reconcile",
    "meter",
    str(FIXTURES / "meter_interval_hourly_chicago.csv"),
    "--mapping",
    str(FIXTURES / "meter_mapping_chicago.toml"),
    "--metered",
    str(FIXTURES / "metered_daily.csv"),
]
SITE_TOML = '[site]\nid = "site-test"\ntimezone = "America/Chicago"\n'
POOL = ["reconcile", "pool", "--ours", str(FIXTURES / "pool_ours_daily.csv"), "--pool-fee-pct", "2.5"]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HASHINSIGHT_DATA_DIR", str(tmp_path))
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML)
    monkeypatch.setenv("HASHINSIGHT_CONFIG", str(config))

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(app, list(args))

    return invoke


def tickets(data_dir: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(data_dir / "state.db") as conn:
        return conn.execute("SELECT id, kind, status FROM dispute_tickets ORDER BY id").fetchall()


def test_meter_failure_opens_a_verified_package_and_a_ticket(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(*METER)
    assert result.exit_code == 0, result.output
    assert "1 of 3 days beyond 0.5 % (0 not compared); compared diff 190.000 kWh (0.261 %)" in result.output
    assert "2024-11-04" in result.output and "0.840" in result.output
    zips = list((tmp_path / "disputes").glob("dispute-meter-2024-11-02-2024-11-04-*.zip"))
    assert len(zips) == 1 and f"dispute ticket #1 opened; package: {zips[0]}" in result.output
    key = load_or_create_site_key(tmp_path)
    assert verify_evidence_zip(zips[0], trusted_keys=[key.public_key_b64]).ok
    assert tickets(tmp_path) == [(1, "meter", "open")]


def test_meter_within_tolerance_or_no_dispute_writes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(*METER, "--meter-class", "check")
    assert result.exit_code == 0 and "0 of 3 days beyond 2.0 %" in result.output
    result = run(*METER, "--no-dispute")
    assert result.exit_code == 0 and "1 of 3 days" in result.output
    result = run(*METER, "--tolerance", "revenue=1")
    assert result.exit_code == 0 and "0 of 3 days beyond 1 %" in result.output
    assert not (tmp_path / "disputes").exists()


def test_pool_presets(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(*POOL, str(FIXTURES / "f2pool_transactions.csv"), "--preset", "f2pool")
    assert result.exit_code == 0, result.output
    assert "1 non-mining rows (payouts, adjustments) skipped" in result.output
    assert "paid - expected -0.00002740 BTC (-1.874 %)" in result.output
    assert tickets(tmp_path) == [(1, "pool", "open")]
    generic = [str(FIXTURES / "generic_sats.csv"), "--preset", "generic", "--date-column", "Day"]
    result = run(
        *POOL, *generic, "--amount-column", "Credited (sat)", "--unit", "sat", "--tolerance-pct", "6"
    )
    assert result.exit_code == 0 and "0 of 3 days beyond 6 %" in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--metered", str(FIXTURES / "braiins_daily_rewards.csv")],
            1,
            "braiins_daily_rewards.csv: line 1: header must be day,kwh,coverage_pct",
        ),
        (["--tolerance", "revenue"], 2, "expected CLASS=PERCENT"),
        (["--min-coverage-pct", "lots"], 2, "is not a number"),
    ],
)
def test_meter_errors_are_one_line(run, args: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    result = run(*METER, *args)
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output
    assert len([ln for ln in result.output.splitlines() if ln.startswith("error:")]) == 1


def test_bad_meter_file_and_mapping(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "meter.csv"
    bad.write_text('Meter ID,Interval Start,Usage (kWh),Quality\nM,11/02/2024 00:00,"=HYPERLINK(""x"")",A\n')
    args = [*METER[:2], str(bad), *METER[3:]]
    result = run(*args)
    assert result.exit_code == 1
    assert "line 2, column 3 (Usage (kWh)):" in result.output and "formula" in result.output
    mapping = tmp_path / "m.toml"
    mapping.write_text('time_column = "a"\nvalue_column = "b"\nunit = "kW"\nkind = "interval"\n')
    result = run(*METER[:4], str(mapping), *METER[5:])
    assert result.exit_code == 2 and "mapping.unit" in result.output
    result = run(*METER[:2], str(tmp_path / "absent.csv"), *METER[3:])
    assert result.exit_code == 2 and "no such file" in result.output
    assert not (tmp_path / "disputes").exists()


def test_pool_usage_errors(run) -> None:  # type: ignore[no-untyped-def]
    result = run(*POOL, str(FIXTURES / "generic_sats.csv"), "--preset", "generic")
    assert result.exit_code == 2 and "needs --date-column and --amount-column" in result.output
    result = run(*POOL[:-1], "150", str(FIXTURES / "braiins_daily_rewards.csv"), "--preset", "braiins")
    assert result.exit_code == 2 and "0..100" in result.output
    result = run(*POOL, str(FIXTURES / "braiins_daily_rewards.csv"), "--preset", "ocean")
    assert result.exit_code == 1 and "is this a ocean export?" in result.output


def test_meter_against_the_gateways_own_daily_figures(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Without --metered, our side is the site_energy day figures in the data dir's telemetry.duckdb."""
    from gateway.store.site_energy import refresh_site_energy
    from gateway.store.telemetry import TelemetryStore

    start = 1_730_523_600  # 2024-11-02 00:00 CDT
    end = 1_730_786_400  # 2024-11-05 00:00 CST (the 3rd has 25 hours)
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        store.run(
            lambda conn: conn.execute(
                "INSERT INTO energy_15m SELECT 'm' || m, ? + i * 900, 250000 * 900, 900, 0, 0, 250000.0,"
                " 250000.0 FROM range(4) t(m), range(?) s(i)",
                [start, (end - start) // 900],
            )
        ).result()
        store.run(
            lambda conn: refresh_site_energy(conn, since=start, until=end, now=end, tz="America/Chicago")
        ).result()
    finally:
        store.close()
    result = run(
        "reconcile", "meter", str(FIXTURES / "meter_interval_hourly_chicago.csv"),
        "--mapping", str(FIXTURES / "meter_mapping_chicago.toml"), "--no-dispute",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "25000.000" in result.output  # our 25-hour day at 1 MW, read from the gateway's figures


NOV_2_CDT = 1_730_523_600  # 2024-11-02 00:00 America/Chicago
NOV_5_CST = 1_730_786_400  # 2024-11-05 00:00 America/Chicago (the 3rd has 25 hours)


def gateway_days_at_1_mw(data_dir: Path) -> None:
    """The gateway's own site figures in `data_dir`: four miners at 250 kW over three Chicago days."""
    from gateway.store.site_energy import refresh_site_energy
    from gateway.store.telemetry import TelemetryStore

    store = TelemetryStore(data_dir / "telemetry.duckdb")
    try:
        store.run(
            lambda conn: conn.execute(
                "INSERT INTO energy_15m SELECT 'm' || m, ? + i * 900, 250000 * 900, 900, 0, 0, 250000.0,"
                " 250000.0 FROM range(4) t(m), range(?) s(i)",
                [NOV_2_CDT, (NOV_5_CST - NOV_2_CDT) // 900],
            )
        ).result()
        store.run(
            lambda conn: refresh_site_energy(
                conn, since=NOV_2_CDT, until=NOV_5_CST, now=NOV_5_CST, tz="America/Chicago"
            )
        ).result()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("mapping_text", "time_text"),
    [
        ('time_format = "epoch"\n', lambda ts: str(ts)),
        (
            'time_format = "%Y-%m-%d %H:%M"\ntz = "UTC"\n',
            lambda ts: f"{datetime.fromtimestamp(ts, UTC):%Y-%m-%d %H:%M}",
        ),
        (
            'time_format = "%Y-%m-%d %H:%M"\n',
            lambda ts: f"{datetime.fromtimestamp(ts, CHICAGO):%Y-%m-%d %H:%M}",
        ),
    ],
    ids=["epoch", "naive-utc-file", "naive-in-site-zone-by-default"],
)
def test_meter_days_are_the_sites_local_days_whatever_the_files_zone(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, mapping_text: str, time_text: Callable[[int], str]
) -> None:
    """Finding D: the mapping's tz only reads naive times; days are always the site's (Chicago here), so
    a UTC-stamped meter file lines up with the gateway's local-day figures instead of being relabelled
    by UTC date (which left two partial days and shifted every total by five or six hours)."""
    gateway_days_at_1_mw(tmp_path)
    lines = ["ts,kwh"] + [f"{time_text(ts)},1000" for ts in range(NOV_2_CDT, NOV_5_CST, 3600)]
    meter = tmp_path / "meter.csv"
    meter.write_text("\n".join(lines) + "\n")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(f'time_column = "ts"\nvalue_column = "kwh"\nunit = "kWh"\nkind = "interval"\n'
                       f'interval_s = 3600\n{mapping_text}')  # fmt: skip
    result = run("reconcile", "meter", str(meter), "--mapping", str(mapping), "--no-dispute")
    assert result.exit_code == 0, result.output
    assert "meter 2024-11-02..2024-11-04: 0 of 3 days beyond 0.5 % (0 not compared)" in result.output
    assert "site days, America/Chicago" in result.output
    assert result.output.count("25000.000") == 2  # the 25-hour day, the same on both sides


def test_an_unknown_meter_class_is_refused_naming_the_known_ones(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Finding E: a typo in the class must not judge a 2 % check meter at a silent 0.5 % default."""
    result = run(*METER, "--meter-class", "chek")
    assert result.exit_code == 2
    assert "error: --meter-class: unknown meter class 'chek' (known: check, revenue)" in result.output
    mapping = tmp_path / "m.toml"
    mapping.write_text(
        (FIXTURES / "meter_mapping_chicago.toml").read_text().replace('"revenue"', '"submeter"')
    )
    result = run(*METER[:4], str(mapping), *METER[5:])
    assert result.exit_code == 2 and "meter_class: unknown meter class 'submeter'" in result.output
    result = run(*METER[:4], str(mapping), *METER[5:], "--tolerance", "submeter=5")
    assert result.exit_code == 0 and "0 of 3 days beyond 5 %" in result.output
    assert not (tmp_path / "disputes").exists()
