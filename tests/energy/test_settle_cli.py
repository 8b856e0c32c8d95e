"""The settlement commands end to end, through the real console script, on real state.db and DuckDB files:
tariff import/activate, prices import, assign, settle, invoices show/export, verify."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry_schema import SCHEMA

HASHINSIGHT = str(Path(sys.executable).with_name("hashinsight"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "energy"
JUNE_1 = 1_717_218_000  # 2024-06-01 00:00 America/Chicago (CDT, UTC-5)
JULY_1 = 1_719_810_000
AUG_1 = 1_722_488_400

FLAT_TOML = """
name = "Host flat rate"
[energy]
type = "flat"
rate_per_kwh = "0.05"
[demand]
rate_per_kw = "10"
"""

RT_TOML = """
name = "ERCOT South real-time"
[energy]
type = "real-time"
series = "HB_SOUTH"
adder_per_kwh = "0.004"
"""

SITE_TOML = """
[site]
id = "site-test"
timezone = "America/Chicago"
[energy]
pue = "1.05"
tax_pct = "8.25"
[[energy.fixed_fees]]
description = "Rack space"
amount = "100"
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HASHINSIGHT, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir with three registered miners (no owner yet) and metered energy for June and July
    2024: 3 kW each, every interval fully covered, miner m1 at 6 kW in one July interval."""
    data = tmp_path / "data"
    conn = open_state(data / "state.db")
    upsert_miners(
        conn,
        [InventoryRow(id=f"m{i}", ip=f"127.0.0.{10 + i}", family="antminer") for i in range(3)],
        now=JUNE_1 - 86_400 * 60,
    )
    conn.close()
    duck = duckdb.connect(str(data / "telemetry.duckdb"))
    duck.execute(SCHEMA)
    duck.execute(
        "INSERT INTO energy_15m SELECT 'm' || m, ? + i * 900, 3000 * 900, 900, 0, 0, 3000.0, 3000.0"
        " FROM range(3) t(m), range(?) s(i)",
        [JUNE_1, (AUG_1 - JUNE_1) // 900],
    )
    duck.execute(
        "UPDATE energy_15m SET joules = 6000 * 900 WHERE miner_id = 'm1' AND interval_start = ?",
        [JULY_1 + 7200],
    )
    duck.close()
    config = tmp_path / "site.toml"
    config.write_text(SITE_TOML)
    return data, config


def cli(site: tuple[Path, Path], *args: str) -> subprocess.CompletedProcess[str]:
    data, config = site
    return run(*args, "--data-dir", str(data), "--config", str(config))


def test_a_month_settles_exports_and_verifies(site: tuple[Path, Path], tmp_path: Path) -> None:
    tariff = tmp_path / "flat.toml"
    tariff.write_text(FLAT_TOML)
    r = cli(site, "tariff", "import", str(tariff))
    assert r.returncode == 0, r.stderr
    assert "tariff 1: Host flat rate" in r.stdout
    assert cli(site, "tariff", "activate", "1", "--from", "2024-06-01").returncode == 0
    assert cli(site, "assign", "m0", "m1", "--customer", "acme", "--from", "2024-06-01").returncode == 0
    assert cli(site, "assign", "m2", "--customer", "bitfarm", "--from", "2024-06-01").returncode == 0
    # m1 changes hands mid-month, off the 15-minute grid
    r = cli(site, "assign", "m1", "--customer", "bitfarm", "--from", "2024-06-16T12:00:07-05:00")
    assert r.returncode == 0, r.stderr

    r = cli(site, "settle", "--period", "2024-06")
    assert r.returncode == 0, r.stderr
    assert "settled 2024-06 (revision 1)" in r.stdout and "never moves" in r.stdout
    folder = site[0] / "settlements" / "2024-06-r1"
    record = json.loads((folder / "settlement.json").read_text())
    # 3 miners x 3 kW x 720 h = 6,480 kWh; all of it owned
    assert record["site_energy"]["energy_j"] == 3 * 3000 * 900 * 2880
    assert record["unassigned_energy"]["energy_j"] == 0
    acme, bitfarm = record["invoices"]
    m1_acme_s = 1_718_557_207 - JUNE_1  # seconds of June m1 spent with acme
    assert acme["energy"]["energy_j"] == 3000 * 900 * 2880 + 3000 * m1_acme_s
    assert acme["energy"]["energy_j"] + bitfarm["energy"]["energy_j"] == record["site_energy"]["energy_j"]
    # Flat demand $10/kW on a 9 kW site peak = $90, split 2:1 by the load in the peak window (the first
    # window at 9 kW is June 1 00:00, when m1 was acme's).
    demand = {
        inv["customer_id"]: [ln["amount"] for ln in inv["lines"] if ln["kind"] == "demand"]
        for inv in record["invoices"]
    }
    assert demand == {"acme": ["60.00"], "bitfarm": ["30.00"]}
    for inv in record["invoices"]:
        assert sum(float(ln["amount"]) for ln in inv["lines"]) == pytest.approx(float(inv["total"]), abs=1e-9)
        assert inv["notice"].startswith("Draft and evidence only")

    r = cli(site, "invoices", "show", "--period", "2024-06", "--customer", "acme")
    assert r.returncode == 0, r.stderr
    assert "Demand charge" in r.stdout and "Rack space" in r.stdout and "Tax" in r.stdout

    out = tmp_path / "export"
    r = cli(site, "invoices", "export", "--period", "2024-06", "--format", "csv", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "invoices.csv").open()))
    assert {row["notice"] for row in rows} == {acme["notice"]}
    assert [row["amount"] for row in rows if row["kind"] == "total"] == [acme["total"], bitfarm["total"]]
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 0, r.stdout + r.stderr
    # tampering with a draft is caught
    (out / "invoices.csv").write_text((out / "invoices.csv").read_text().replace(acme["total"], "1.00"))
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 1 and "invoices.csv" in r.stdout + r.stderr

    # settling again makes revision 2, revision 1 stays as it was
    before = (folder / "invoices.csv").read_bytes()
    assert cli(site, "settle", "--period", "2024-06").returncode == 0
    assert (site[0] / "settlements" / "2024-06-r2" / "invoices.csv").exists()
    assert (folder / "invoices.csv").read_bytes() == before


def test_real_time_month_from_imported_ercot_prices(site: tuple[Path, Path], tmp_path: Path) -> None:
    prices = FIXTURES / "prices" / "ercot_hb_south_15min_2024-06_2024-09.csv"
    r = cli(site, "prices", "import", str(prices), "--series", "HB_SOUTH", "--format", "grid",
            "--column", "HB_SOUTH_RTM")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "11712 new interval price(s)" in r.stdout
    again = cli(site, "prices", "import", str(prices), "--series", "HB_SOUTH", "--format", "grid",
                "--column", "HB_SOUTH_RTM")  # fmt: skip
    assert "0 new interval price(s), 11712 already stored" in again.stdout
    tariff = tmp_path / "rt.toml"
    tariff.write_text(RT_TOML)
    assert cli(site, "tariff", "import", str(tariff)).returncode == 0
    assert cli(site, "tariff", "activate", "1", "--from", "2024-07-01").returncode == 0
    assert cli(site, "assign", "m0", "m1", "m2", "--customer", "acme", "--from", "2024-07-01").returncode == 0
    r = cli(site, "settle", "--period", "2024-07")
    assert r.returncode == 0, r.stderr
    record = json.loads((site[0] / "settlements" / "2024-07-r1" / "settlement.json").read_text())
    (acme,) = record["invoices"]
    energy = acme["lines"][0]
    # July's 2,976 intervals carry 1,708 distinct real-time prices (+ adder): one line at their average
    assert record["price_count"] == 1708
    assert energy["kind"] == "energy" and "real-time prices (1708 prices" in energy["description"]
    assert (site[0] / "settlements" / "2024-07-r1" / "inputs" / "prices-HB_SOUTH.csv").exists()


def test_refusals_change_nothing(site: tuple[Path, Path], tmp_path: Path) -> None:
    r = cli(site, "settle", "--period", "2024-13")
    assert r.returncode == 2 and "YYYY-MM" in r.stderr
    r = cli(site, "settle", "--period", "2024-06")
    assert r.returncode == 1 and "no tariff in force in 2024-06" in r.stderr
    bad = tmp_path / "bad.toml"
    for text, message in (
        ('name = "x"\n[energy]\ntype = "flat"\nrate_per_kwh = 0.05\n', "not a float"),
        ('name = "=HYPERLINK(1)"\n[energy]\ntype = "flat"\nrate_per_kwh = "0.05"\n', "spreadsheet formula"),
        ('name = "x"\n[energy]\ntype = "tou"\nperiods = { a = "0.1" }\n[[energy.windows]]\nperiod = "a"\n'
         'start = "01:00"\nend = "02:00"\n', "time-of-use windows"),
        ("\x00\x01garbage", "not valid TOML"),
    ):  # fmt: skip
        bad.write_text(text)
        r = cli(site, "tariff", "import", str(bad))
        assert r.returncode == 1 and message in r.stderr, r.stderr
    assert "no tariffs imported" in cli(site, "tariff", "show").stdout
    urdb = tmp_path / "truncated.json"
    urdb.write_bytes((FIXTURES / "urdb" / "SCE_TOU-8__Option-D_Under-2-kV.json").read_bytes()[:5000])
    r = cli(site, "tariff", "import", str(urdb))
    assert r.returncode == 1 and "line" in r.stderr
    # a price file that contradicts stored prices is refused whole
    prices = tmp_path / "p.csv"
    prices.write_text("ts,price_usd_per_mwh\n2024-06-01T00:00:00-05:00,20\n2024-06-01T00:15:00-05:00,21\n")
    assert cli(site, "prices", "import", str(prices), "--series", "S", "--format", "ts").returncode == 0
    prices.write_text("ts,price_usd_per_mwh\n2024-06-01T00:30:00-05:00,22\n2024-06-01T00:15:00-05:00,99\n")
    r = cli(site, "prices", "import", str(prices), "--series", "S", "--format", "ts")
    assert r.returncode == 1 and "nothing imported" in r.stderr
    conn = open_state(site[0] / "state.db")
    assert conn.execute("SELECT COUNT(*) FROM price_points").fetchone()[0] == 2
    conn.close()
    r = cli(site, "invoices", "show", "--period", "2024-06")
    assert r.returncode == 1 and "not settled yet" in r.stderr


def test_the_tariff_history_only_grows(site: tuple[Path, Path], tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "urdb" / "SCE_TOU-8__Option-D_Under-2-kV.json", tmp_path / "sce.json")
    r = cli(site, "tariff", "import", str(tmp_path / "sce.json"))
    assert r.returncode == 0, r.stderr
    assert cli(site, "tariff", "activate", "1", "--from", "2024-07-01").returncode == 0
    r = cli(site, "tariff", "activate", "1", "--from", "2024-06-01")
    assert r.returncode == 1 and "must start later" in r.stderr
    r = cli(site, "tariff", "show", "1")
    assert r.returncode == 0 and "demand interval: 15 min" in r.stdout


def test_curtailment_credits_from_verified_sleeps_land_on_the_draft(tmp_path: Path) -> None:
    """`[energy] curtailment_credits = "per_kwh"`: a miner the executor put to sleep (verified) for two hours
    earns its owner a credit line for the conservative saving (profile watts x time - what it drew)."""
    data = tmp_path / "data"
    conn = open_state(data / "state.db")
    upsert_miners(
        conn,
        [InventoryRow(id="m0", ip="127.0.0.10", family="antminer", profile_key="antminer_s19j_pro")],
        now=JUNE_1 - 86_400 * 60,
    )
    sleep_at, wake_at = JUNE_1 + 10 * 86_400, JUNE_1 + 10 * 86_400 + 7200
    event = conn.execute(
        "INSERT INTO curtail_events (started_ts, source, reason, targets) VALUES (?, 'plan', 'price', '{}')",
        (sleep_at,),
    ).lastrowid
    for ts, action in ((sleep_at, "sleep"), (wake_at, "wake")):
        conn.execute(
            "INSERT INTO curtail_actions (event_id, ts, miner_id, action, reason, status)"
            " VALUES (?, ?, 'm0', ?, 'plan', 'verified')",
            (event, ts, action),
        )
    conn.close()
    duck = duckdb.connect(str(data / "telemetry.duckdb"))
    duck.execute(SCHEMA)
    duck.execute(
        "INSERT INTO energy_15m SELECT 'm0', ? + i * 900, 3050 * 900, 900, 0, 0, 3050.0, 3050.0"
        " FROM range(2880) s(i)",
        [JUNE_1],
    )
    # asleep: 15 W for the eight intervals of the two hours
    duck.execute(
        "UPDATE energy_15m SET joules = 15 * 900 WHERE interval_start >= ? AND interval_start < ?",
        [sleep_at, wake_at],
    )
    duck.close()
    config = tmp_path / "site.toml"
    config.write_text(
        SITE_TOML.replace(
            "[energy]\n", '[energy]\ncurtailment_credits = "per_kwh"\ncurtailment_credit_per_kwh = "0.03"\n'
        )
    )
    site = (data, config)
    tariff = tmp_path / "flat.toml"
    tariff.write_text(FLAT_TOML)
    assert cli(site, "tariff", "import", str(tariff)).returncode == 0
    assert cli(site, "tariff", "activate", "1", "--from", "2024-06-01").returncode == 0
    assert cli(site, "assign", "m0", "--customer", "acme", "--from", "2024-06-01").returncode == 0
    r = cli(site, "settle", "--period", "2024-06")
    assert r.returncode == 0, r.stderr
    record = json.loads((data / "settlements" / "2024-06-r1" / "settlement.json").read_text())
    (acme,) = record["invoices"]
    credits = [ln for ln in acme["lines"] if ln["kind"] == "credit"]
    # (3050 W - 15 W) x 7200 s = 21,852,000 J = 6.07 kWh, at $0.03 = $0.1821 -> -0.18
    assert [(c["quantity"], c["amount"]) for c in credits] == [("6.070", "-0.18")]


def settled_june(site: tuple[Path, Path], tmp_path: Path) -> Path:
    """June 2024 settled once (flat tariff, all three miners acme's): the revision folder."""
    tariff = tmp_path / "flat.toml"
    tariff.write_text(FLAT_TOML)
    assert cli(site, "tariff", "import", str(tariff)).returncode == 0
    assert cli(site, "tariff", "activate", "1", "--from", "2024-06-01").returncode == 0
    assert cli(site, "assign", "m0", "m1", "m2", "--customer", "acme", "--from", "2024-06-01").returncode == 0
    r = cli(site, "settle", "--period", "2024-06")
    assert r.returncode == 0, r.stderr
    return site[0] / "settlements" / "2024-06-r1"


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") or p.name.startswith("exp"))


def test_export_refuses_a_revision_changed_after_settling(site: tuple[Path, Path], tmp_path: Path) -> None:
    """Finding A: export re-signs, so it must verify the revision first, or a tampered draft (or input)
    would come out as a VALID export."""
    folder = settled_june(site, tmp_path)
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "exp"
    csv_text = (folder / "invoices.csv").read_text()
    total = json.loads((folder / "settlement.json").read_text())["invoices"][0]["total"]
    (folder / "invoices.csv").write_text(csv_text.replace(total, "1.00"))
    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 1
    refused = "error: 2024-06-r1 does not verify, refusing to export it: output 'invoices.csv'"
    assert r.stderr.startswith(refused)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert leftovers(exports) == []
    (folder / "invoices.csv").write_text(csv_text)

    energy = folder / "inputs" / "energy_15m.csv"
    rows = energy.read_text()
    energy.write_text(rows.replace(",2700000,", ",2700001,", 1))
    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 1 and "input 'inputs/energy_15m.csv': content differs" in r.stderr
    energy.unlink()
    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 1 and "input 'inputs/energy_15m.csv': not present" in r.stderr
    assert leftovers(exports) == []
    energy.write_text(rows)
    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert run("verify", str(out / "evidence.json")).returncode == 0


def test_verify_checks_the_inputs_shipped_with_an_export(site: tuple[Path, Path], tmp_path: Path) -> None:
    """Finding B: an input file beside the evidence must match its signed hash; an absent one is fine but
    said to be unchecked."""
    settled_june(site, tmp_path)
    out = tmp_path / "exp"
    r = cli(site, "invoices", "export", "--period", "2024-06", "--format", "json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 0, r.stdout
    assert "  input 'inputs/energy_15m.csv': OK" in r.stdout
    assert "  input 'inputs/fees.json': OK" in r.stdout
    energy = out / "inputs" / "energy_15m.csv"
    rows = energy.read_text()
    energy.write_text(rows.replace(",2700000,", ",2600000,", 1))
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 1 and r.stdout.startswith("INVALID")
    assert "problem: input 'inputs/energy_15m.csv': content differs from the signed hash" in r.stdout
    energy.unlink()
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 0, r.stdout
    assert "  input 'inputs/energy_15m.csv': not present, not checked" in r.stdout
    # a link that leads out of the export is refused, not followed
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(rows)
    energy.symlink_to(outside)
    r = run("verify", str(out / "evidence.json"))
    assert r.returncode == 1 and "outside the evidence's folder; not followed" in r.stdout


def test_export_failures_are_one_line_and_leave_nothing(site: tuple[Path, Path], tmp_path: Path) -> None:
    """Finding C: every way an export can fail exits 1 (2 for usage) with one line, no traceback, and
    no half-written export or staging folder left behind."""
    folder = settled_june(site, tmp_path)
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / "exp"

    def export(target: Path, code: int, message: str) -> None:
        before = sorted(p.name for p in exports.iterdir())
        r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(target))
        assert r.returncode == code, (r.stdout, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert sorted(p.name for p in exports.iterdir()) == before

    (exports / "exp").write_text("a file")
    export(out, 2, "exists and is not a directory")
    (exports / "exp").unlink()
    export(exports / "missing" / "exp", 2, "no such directory")
    export(Path("/proc/hashinsight-export"), 1, "cannot write there")
    (exports / "exp").symlink_to(tmp_path / "nowhere")
    export(out, 2, "is a symbolic link")
    (exports / "exp").unlink()

    evidence = (folder / "evidence.json").read_bytes()
    document = json.loads(evidence)
    for broken, message in (
        (b"", "evidence is not JSON"),
        (b"{not json", "evidence is not JSON"),
        (json.dumps({**document, "extra": 1}).encode(), "unexpected field 'extra'"),
        (json.dumps({k: v for k, v in document.items() if k != "inputs"}).encode(), "missing field 'inputs'"),
    ):
        (folder / "evidence.json").write_bytes(broken)
        export(out, 1, message)
    (folder / "evidence.json").write_bytes(evidence)

    fees = folder / "inputs" / "fees.json"
    saved = fees.read_bytes()
    fees.unlink()
    fees.symlink_to(folder / "inputs" / "gone.json")  # dangling
    export(out, 1, "input 'inputs/fees.json': not present")
    fees.unlink()
    fees.write_bytes(saved)

    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 0, r.stderr
    shipped = ["evidence.json", "inputs", "invoices.csv", "settlement.json"]
    assert sorted(p.name for p in out.iterdir()) == shipped
    assert leftovers(exports) == ["exp"]
    r = cli(site, "invoices", "export", "--period", "2024-06", "--out", str(out))
    assert r.returncode == 2 and "not empty" in r.stderr
