"""Dispute packages and tickets, on real files and a real state.db: the ZIP verifies with the site key and
holds the received CSV byte for byte; it is written atomically; the ticket comes only after the package;
tampering is detected; hostile file names cannot escape the archive."""

from __future__ import annotations

import json
import tomllib
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.energy.dispute import (
    build_package,
    list_tickets,
    meter_dispute,
    open_dispute,
    pool_dispute,
    record_ticket,
)
from gateway.energy.evidence_package import verify_evidence_zip
from gateway.energy.meter_csv import MeterMapping, read_day_table, read_meter_csv, read_metered_csv
from gateway.energy.pool_csv import PRESETS, read_pool_csv
from gateway.energy.pool_reconcile import reconcile_pool
from gateway.energy.reconcile import meter_days, reconcile_meter
from gateway.store.state import open_state
from shared.canonical import sha256_hex
from shared.signing import SigningKey

FIXTURES = Path(__file__).parent.parent / "fixtures" / "energy" / "reconcile"
METER_FILE = FIXTURES / "meter_interval_hourly_chicago.csv"
GENERATED_AT = 1_730_900_000  # 2024-11-06T13:33:20Z


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


def meter_package(received_name: str = METER_FILE.name):  # type: ignore[no-untyped-def]
    m = MeterMapping.from_dict(tomllib.loads((FIXTURES / "meter_mapping_chicago.toml").read_text()))
    received = METER_FILE.read_bytes()
    metered = read_metered_csv((FIXTURES / "metered_daily.csv").read_bytes())
    report = reconcile_meter(meter_days(read_meter_csv(received, m), m.tz), metered)
    return meter_dispute(
        report,
        received_name=received_name,
        received=received,
        metered=metered,
        zone=m.tz,
        generated_at=GENERATED_AT,
    )


def test_meter_package_holds_everything_and_verifies_with_the_site_key(
    tmp_path: Path, key: SigningKey
) -> None:
    path = build_package(
        meter_package(), out_dir=tmp_path, generated_at=GENERATED_AT, site_id="site-1", key=key
    )
    assert path.name == "dispute-meter-2024-11-02-2024-11-04-1730900000.zip"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    result = verify_evidence_zip(path, trusted_keys=[key.public_key_b64])
    assert result.ok, result.problems
    assert result.checked_files == ("report.csv", "report.json")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == [
            "evidence.json",
            "ours_metered.csv",
            "received_meter_interval_hourly_chicago.csv",
            "report.csv",
            "report.json",
        ]
        assert archive.read("received_meter_interval_hourly_chicago.csv") == METER_FILE.read_bytes()
        evidence = json.loads(archive.read("evidence.json"))
        report = json.loads(archive.read("report.json"))
        ours = archive.read("ours_metered.csv").decode()
        report_csv = archive.read("report.csv").decode().splitlines()
    assert evidence["period"] == {
        "start": 1_730_523_600,  # 2024-11-02 00:00 CDT
        "end": 1_730_786_400,  # 2024-11-05 00:00 CST
        "first_day": "2024-11-02",
        "last_day": "2024-11-04",
        "zone": "America/Chicago",
    }
    assert evidence["generated_at"] == GENERATED_AT and evidence["site_id"] == "site-1"
    assert {i["name"]: i["sha256"] for i in evidence["inputs"]} == {
        "received_meter_interval_hourly_chicago.csv": sha256_hex(METER_FILE.read_bytes()),
        "ours_metered.csv": sha256_hex(ours.encode()),
    }
    assert "HashInsight Edge never moves, holds or pays out money" in evidence["notice"]
    assert report["generated_at"] == "2024-11-06T13:33:20Z"
    assert report["period"] == {"start": "2024-11-02T05:00:00Z", "end": "2024-11-05T06:00:00Z"}
    assert report["summary"]["fail"] == 1 and [r["status"] for r in report["rows"]] == [
        "pass",
        "pass",
        "fail",
    ]
    assert ours.splitlines()[1] == "2024-11-02,24010.000000,100,86436000000"
    assert report_csv[0] == (
        "day,meter_kwh,metered_kwh,diff_kwh,diff_pct,coverage_pct,meter_coverage_pct,status,meter_j,metered_j,note"
    )
    assert report_csv[3].startswith("2024-11-04,24000.000,23800.000,200.000,0.840,100,100.000,fail,")


def test_same_inputs_give_the_same_bytes(tmp_path: Path, key: SigningKey) -> None:
    a = build_package(
        meter_package(), out_dir=tmp_path / "a", generated_at=GENERATED_AT, site_id="s", key=key
    )
    b = build_package(
        meter_package(), out_dir=tmp_path / "b", generated_at=GENERATED_AT, site_id="s", key=key
    )
    assert a.read_bytes() == b.read_bytes()


def test_an_existing_package_is_never_replaced(tmp_path: Path, key: SigningKey) -> None:
    path = build_package(meter_package(), out_dir=tmp_path, generated_at=GENERATED_AT, site_id="s", key=key)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="not replaced"):
        build_package(meter_package(), out_dir=tmp_path, generated_at=GENERATED_AT, site_id="other", key=key)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_tampering_with_a_member_is_detected(tmp_path: Path, key: SigningKey) -> None:
    path = build_package(meter_package(), out_dir=tmp_path, generated_at=GENERATED_AT, site_id="s", key=key)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "report.csv":
                data = data.replace(b",fail,", b",pass,")
            dst.writestr(info, data)
    result = verify_evidence_zip(forged, trusted_keys=[key.public_key_b64])
    assert not result.ok and any("report.csv" in p for p in result.problems)
    other = SigningKey.generate()
    assert not verify_evidence_zip(path, trusted_keys=[other.public_key_b64]).ok


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "C:\\Users\\x\\..\\meter.csv", "/abs/meter.csv", "....", "a\x00b.csv"]
)
def test_hostile_received_names_stay_flat_inside_the_zip(tmp_path: Path, key: SigningKey, name: str) -> None:
    path = build_package(
        meter_package(name), out_dir=tmp_path, generated_at=GENERATED_AT, site_id="s", key=key
    )
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            assert "/" not in member and "\\" not in member and ".." not in member and "\x00" not in member
    assert verify_evidence_zip(path, trusted_keys=[key.public_key_b64]).ok


def test_ticket_comes_after_the_package_and_points_at_it(tmp_path: Path, key: SigningKey) -> None:
    conn = open_state(tmp_path / "state.db")
    ticket = open_dispute(
        conn, meter_package(), out_dir=tmp_path / "disputes", generated_at=GENERATED_AT, site_id="s", key=key
    )
    assert (ticket.id, ticket.kind, ticket.status) == (1, "meter", "open")
    assert (ticket.period_start, ticket.period_end) == ("2024-11-02", "2024-11-04")
    assert ticket.package_sha256 == sha256_hex(Path(ticket.package_path).read_bytes())
    assert "1 of 3 days beyond 0.5 %" in ticket.summary
    assert list_tickets(conn) == [ticket] and list_tickets(conn, status="closed") == []
    conn.close()
    reopened = open_state(tmp_path / "state.db")  # committed: survives a reopen
    assert list_tickets(reopened, status="open") == [ticket]
    reopened.close()


def test_a_failed_package_leaves_no_file_and_no_ticket(tmp_path: Path, key: SigningKey) -> None:
    conn = open_state(tmp_path / "state.db")
    out = tmp_path / "disputes"
    with pytest.raises(ValueError, match="site_id"):
        open_dispute(conn, meter_package(), out_dir=out, generated_at=GENERATED_AT, site_id=" ", key=key)
    assert not out.exists() or list(out.iterdir()) == []
    assert list_tickets(conn) == []
    # a ticket for a package that is not on disk cannot be recorded either
    with pytest.raises(FileNotFoundError):
        record_ticket(
            conn,
            kind="meter",
            first_day=meter_package().first_day,
            last_day=meter_package().last_day,
            summary="x",
            package_path=out / "nothing.zip",
            created_at=GENERATED_AT,
        )
    assert list_tickets(conn) == []
    conn.close()


def test_pool_package(tmp_path: Path, key: SigningKey) -> None:
    received = (FIXTURES / "braiins_daily_rewards.csv").read_bytes()
    paid = read_pool_csv(received, PRESETS["braiins"]).paid_btc
    ours = read_day_table(
        (FIXTURES / "pool_ours_daily.csv").read_bytes(), ("hashrate_ths", "hashprice_btc_per_th_day")
    )
    report = reconcile_pool(
        paid,
        {d: v["hashrate_ths"] for d, (_, v) in ours.items()},
        {d: v["hashprice_btc_per_th_day"] for d, (_, v) in ours.items()},
        pool="braiins",
        pool_fee_pct=Decimal("2.5"),
    )
    package = pool_dispute(
        report, received_name="daily_rewards.csv", received=received, generated_at=GENERATED_AT
    )
    conn = open_state(tmp_path / "state.db")
    ticket = open_dispute(conn, package, out_dir=tmp_path, generated_at=GENERATED_AT, site_id="s", key=key)
    conn.close()
    path = Path(ticket.package_path)
    assert verify_evidence_zip(path, trusted_keys=[key.public_key_b64]).ok
    with zipfile.ZipFile(path) as archive:
        assert archive.read("received_daily_rewards.csv") == received
        assert archive.read("ours_hashrate_hashprice.csv").decode().splitlines() == [
            "day,hashrate_ths,hashprice_btc_per_th_day",
            "2024-11-02,1000.0,0.00000050",
            "2024-11-03,1000.0,0.00000050",
            "2024-11-04,1000.0,0.00000050",
        ]
        evidence = json.loads(archive.read("evidence.json"))
    assert evidence["period"]["start"] == 1_730_505_600 and evidence["period"]["zone"] == "UTC"
    assert ticket.kind == "pool" and "underpaid" not in ticket.summary and "1 of 3 days" in ticket.summary
