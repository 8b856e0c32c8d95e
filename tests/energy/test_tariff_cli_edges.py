"""Edges of the settlement inputs, through the real console script on real files: every real URDB file
imports without a validity of its own, hourly prices must say they are hourly, a tariff cannot silently
re-price a settled month, currencies must agree, and what a tariff file may not say."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from gateway.energy.invoicing import settle_month
from gateway.energy.safe_csv import ImportRefused
from gateway.energy.settlement import FeeSchedule, IntervalColumns
from gateway.energy.tariff_file import parse_tariff_file
from gateway.energy.tariffs import TariffError
from gateway.energy.tariffs_urdb import read_urdb
from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry_schema import SCHEMA

HASHINSIGHT = str(Path(sys.executable).with_name("hashinsight"))
URDB = Path(__file__).resolve().parents[1] / "fixtures" / "energy" / "urdb"
NOV_1 = 1_730_437_200  # 2024-11-01 00:00 America/Chicago (CDT)
DEC_1 = 1_733_032_800
SITE = '[site]\ntimezone = "America/Chicago"\n'
FLAT = 'name = "{name}"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.05"\n'
RT = 'name = "rt"\n[energy]\ntype = "real-time"\nseries = "H"\n'


def run(site: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess[str]:
    data, config = site
    cmd = [HASHINSIGHT, *args, "--data-dir", str(data), "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    conn = open_state(data / "state.db")
    upsert_miners(conn, [InventoryRow(id="m0", ip="127.0.0.10", family="antminer")], now=NOV_1 - 86_400)
    conn.close()
    duck = duckdb.connect(str(data / "telemetry.duckdb"))
    duck.execute(SCHEMA)
    duck.execute(
        "INSERT INTO energy_15m SELECT 'm0', ? + i * 900, 3000 * 900, 900, 0, 0, 3000.0, 3000.0"
        " FROM range(?) s(i)",
        [NOV_1, (DEC_1 - NOV_1) // 900],
    )
    duck.close()
    config = tmp_path / "site.toml"
    config.write_text(SITE)
    return data, config


@pytest.mark.parametrize("path", sorted(URDB.glob("*.json")), ids=lambda p: p.stem[:24])
def test_every_real_urdb_file_imports_through_the_cli(site: tuple[Path, Path], path: Path) -> None:
    """Validity is set by `tariff activate`, so a file without `startdate` (REopt's) imports too."""
    r = run(site, "tariff", "import", str(path))
    assert r.returncode == 0, r.stderr
    assert run(site, "tariff", "activate", "1", "--from", "2024-11-01").returncode == 0
    assert run(site, "tariff", "show", "1").returncode == 0


def test_hourly_prices_must_say_so_and_then_settle(site: tuple[Path, Path], tmp_path: Path) -> None:
    prices = tmp_path / "hourly.csv"
    rows = [f"{NOV_1 + h * 3600},{20 + h % 7}" for h in range((DEC_1 - NOV_1) // 3600)]
    prices.write_text("ts,price_usd_per_mwh\n" + "\n".join(rows) + "\n")
    r = run(site, "prices", "import", str(prices), "--series", "H", "--format", "ts")
    assert r.returncode == 1 and "pass --interval-min 60 (nothing imported)" in r.stderr
    r = run(site, "prices", "import", str(prices), "--series", "H", "--format", "ts", "--interval-min", "60")
    assert r.returncode == 0, r.stderr
    tariff = tmp_path / "rt.toml"
    tariff.write_text(RT)
    assert run(site, "tariff", "import", str(tariff)).returncode == 0
    assert run(site, "tariff", "activate", "1", "--from", "2024-11-01").returncode == 0
    assert run(site, "assign", "m0", "--customer", "acme", "--from", "2024-11-01").returncode == 0
    r = run(site, "settle", "--period", "2024-11")
    assert r.returncode == 0, r.stderr


def test_a_tariff_cannot_silently_reprice_a_settled_month(site: tuple[Path, Path], tmp_path: Path) -> None:
    for n in (1, 2):
        path = tmp_path / f"t{n}.toml"
        path.write_text(FLAT.format(name=f"flat {n}"))
        assert run(site, "tariff", "import", str(path)).returncode == 0
    assert run(site, "tariff", "activate", "1", "--from", "2024-11-01").returncode == 0
    assert run(site, "assign", "m0", "--customer", "acme", "--from", "2024-11-01").returncode == 0
    assert run(site, "settle", "--period", "2024-11").returncode == 0
    r = run(site, "tariff", "activate", "2", "--from", "2024-11-15")
    assert r.returncode == 1 and "2024-11 already settled" in r.stderr
    assert run(site, "tariff", "activate", "2", "--from", "2024-11-15", "--force").returncode == 0


def test_customer_ids_are_plain(site: tuple[Path, Path]) -> None:
    for bad in ("evil\nname", "=HYPERLINK(1)", "", "x" * 65):
        r = run(site, "assign", "m0", "--customer", bad, "--from", "2024-11-01")
        assert r.returncode == 1 and "customer id" in r.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[energy]\ntype = "flat"\nrate_per_kwh = "0.1"\n[demand]\nrate_per_kw = "-10"\n', "negative"),
        ('[energy]\ntype = "flat"\nrate_per_kwh = "0.1"\n[fixed]\nper_month = "-1"\n', "negative"),
        ('currency = "not a currency"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.1"\n', "ISO 4217"),
        (
            '[energy]\ntype = "tou"\nperiods = { a = "0.1", b = "0.2" }\n[[energy.windows]]\nperiod = "a"\n'
            'start = "14:07"\nend = "19:00"\n[[energy.windows]]\nperiod = "b"\nstart = "19:00"\n'
            'end = "14:07"\n',
            "15-minute grid",
        ),
    ],
)
def test_what_a_tariff_file_may_not_say(text: str, message: str) -> None:
    with pytest.raises(TariffError, match=message):
        parse_tariff_file(('name = "x"\n' + text).encode())


def test_jpy_tariffs_round_to_whole_yen_and_currencies_must_agree() -> None:
    jpy = parse_tariff_file(b'name = "x"\ncurrency = "JPY"\n[energy]\ntype = "flat"\nrate_per_kwh = "25"\n')
    tariff = jpy.build(valid_from=0)
    assert (tariff.currency, tariff.minor_unit) == ("JPY", 0)
    empty = IntervalColumns.from_rows([])
    with pytest.raises(TariffError, match="in JPY but the fee schedule is in USD"):
        settle_month(year=2024, month=11, tz="Asia/Tokyo", tariffs=[tariff], columns=empty, assignments=[],
                     fees=FeeSchedule())  # fmt: skip
    out = settle_month(year=2024, month=11, tz="Asia/Tokyo", tariffs=[tariff], columns=empty, assignments=[],
                       fees=FeeSchedule(currency="JPY"))  # fmt: skip
    assert out.settlement.site_energy_cost == Decimal(0)


def test_a_urdb_integer_of_thousands_of_digits_is_refused_not_a_crash() -> None:
    with pytest.raises(ImportRefused, match="malformed JSON"):
        read_urdb(b'{"startdate": ' + b"9" * 5000 + b"}")
