"""Settlement and site energy figures through a real running gateway's local API, over HTTP, and the
`hashinsight settle` / `hashinsight energy site` commands against it.

One gateway serves the module: a simulated pair of miners (127.86.x.x belongs to this module) being polled
every 2 s while the tests settle June and July 2024 from seeded, hand-checkable energy: miners m0, m1, m2
(in the inventory but disabled, so never polled) drew 3 kW each through June and July 2024, except m1 at
6 kW for one July interval. m0 and m1 belong to acme, m2 to bitfarm; a flat 0.05 USD/kWh tariff with a
10 USD/kW demand charge is in force from June 1. Before the gateway starts, July is settled once from the
files (`settle` with no gateway answering), so the test comparing both paths has its reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.config import load_settings
from gateway.demo import register
from gateway.energy.carbon import CarbonFactor
from gateway.energy.evidence import verify_evidence
from gateway.energy.tariff_prices import energy_price_fn
from gateway.runtime import Gateway
from gateway.settle_service import check_period
from gateway.store.energy_state import activate_tariff, assign_miners, import_tariff, tariff_history
from gateway.store.site_energy import refresh_site_energy
from gateway.store.state import InventoryRow, open_state, upsert_miners
from gateway.store.telemetry_schema import SCHEMA
from tests.devices.capture import PROFILES
from tests.simulator.conftest import simulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

HASHINSIGHT = str(Path(sys.executable).with_name("hashinsight"))
TZ = "America/Chicago"
JUNE_1 = 1_717_218_000  # 2024-06-01 00:00 CDT (UTC-5)
JULY_1 = 1_719_810_000
AUG_1 = 1_722_488_400
API_HOST = "127.86.255.1"
NO_GATEWAY = "http://127.86.255.2:9"  # nothing listens there: the CLI falls back to the files
SITE_TOML = f"""
[site]
id = "site-h8"
timezone = "{TZ}"
[energy]
pue = "1.05"
tax_pct = "8.25"
carbon_kg_per_kwh = "0.4"
carbon_factor_source = "test factor"
carbon_factor_year = 2022
[[energy.fixed_fees]]
description = "Rack space"
amount = "100"
"""
FLAT_TOML = b"""
name = "Host flat rate"
[energy]
type = "flat"
rate_per_kwh = "0.05"
[demand]
rate_per_kw = "10"
"""
HOSTILE_PERIODS: list[Any] = [
    "2024-13", "2024-00", "2024-6", "24-06", "2024-06-01", "2024-06\n", "2024-06\x00", " 2024-06",
    "\uff12\uff10\uff12\uff14-06",  # full-width digits: \d matches them, a directory name must not
    "\u0662\u0660\u0662\u0664-06",  # Arabic-Indic digits
    "=HYPERLINK(\"http://x\")", "../../etc", "2024-06-r1", "", "9" * 100_0, 202406, 2024.06, None, True,
    ["2024-06"], {"$gt": ""},
]  # fmt: skip


@dataclass
class Site:
    gateway: Gateway
    data: Path
    config: Path
    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            assert response.content_type == "application/json", text
            return response.status, json.loads(text)

    def revisions(self, period: str) -> list[str]:
        root = self.data / "settlements"
        return sorted(p.name for p in root.iterdir() if p.name.startswith(period)) if root.exists() else []


def cli(site_data: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HASHINSIGHT, *args, "--data-dir", str(site_data), "--config", str(config)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def seed(data: Path) -> None:
    conn = open_state(data / "state.db")
    try:
        upsert_miners(
            conn,
            [
                InventoryRow(id=f"m{i}", ip=f"127.86.1.{i + 1}", family="antminer", enabled=False)
                for i in range(3)
            ],
            now=JUNE_1 - 60 * 86_400,
        )
        assign_miners(conn, ["m0", "m1"], "acme", at=JUNE_1, now=JUNE_1)
        assign_miners(conn, ["m2"], "bitfarm", at=JUNE_1, now=JUNE_1)
        tariff_id, _, _ = import_tariff(
            conn, FLAT_TOML, source_name="flat.toml", fmt="hashinsight", now=JUNE_1
        )
        activate_tariff(conn, tariff_id, valid_from=JUNE_1, actor="test", now=JUNE_1)
    finally:
        conn.close()
    duck = duckdb.connect(str(data / "telemetry.duckdb"))
    try:
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
    finally:
        duck.close()


async def until(condition: Callable[[], bool], guard_s: float = 60.0) -> None:
    async with asyncio.timeout(guard_s):
        while not condition():  # noqa: ASYNC110 (the gateway's state, not an event)
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    base = tmp_path_factory.mktemp("h8")
    data, config = base / "data", base / "site.toml"
    config.write_text(SITE_TOML)
    seed(data)
    reference = await asyncio.to_thread(
        cli, data, config, "settle", "--period", "2024-07", "--api", NO_GATEWAY
    )
    assert reference.returncode == 0, reference.stderr
    settings = load_settings(
        config,
        demo=True,
        polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
        api={"host": API_HOST, "port": 0},
    )
    async with simulator("s19=1", "127.86.0.1", miners=2) as sim:
        register(data, sim)
        gateway = Gateway(settings, data, profiles=PROFILES)
        await gateway.start()
        try:
            await until(lambda: gateway.poller.totals.cycles >= 1)
            # The site energy service refreshes the current months at start; June and July 2024 are
            # recomputed here exactly as that job would, on the running store's writer.
            state = sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True)
            history = tariff_history(state, start=JUNE_1, end=AUG_1, demand_interval_s=900)
            state.close()
            price = energy_price_fn(history, TZ)
            carbon = CarbonFactor(kg_per_kwh=Decimal("0.4"), source="test factor", year=2022)
            job = gateway.store.run(
                lambda conn: refresh_site_energy(
                    conn,
                    since=JUNE_1,
                    until=AUG_1,
                    now=int(time.time()),
                    tz=TZ,
                    price_fn=price,
                    carbon=carbon,
                )
            )
            await asyncio.wrap_future(job)
            async with aiohttp.ClientSession() as session:
                yield Site(gateway, data, config, f"http://{API_HOST}:{gateway.api_port}", session)
        finally:
            await gateway.stop()


# --- settle -----------------------------------------------------------------------------------------------


async def test_settle_runs_in_the_gateway_and_signs_the_revision(site: Site) -> None:
    status, body = await site.call("POST", "/api/energy/settle", json={"period": "2024-06"})
    assert status == 200, body
    folder = Path(body["path"])
    assert folder.parent == site.data / "settlements" and folder.name == f"2024-06-r{body['revision']}"
    summary = body["summary"]
    # 3 miners x 3 kW x 720 h, every second metered, none estimated, all of it owned
    assert summary["site_kwh"] == "6480.000"
    assert (summary["coverage_pct"], summary["estimated_pct"]) == ("100.00", "0.00")
    assert (summary["drafts"], summary["unassigned_kwh"], summary["currency"]) == (2, "0.000", "USD")
    assert "never moves" in body["notice"] and summary["notice"] == body["notice"]
    record = json.loads((folder / "settlement.json").read_text())
    assert record["site_energy"]["energy_j"] == 3 * 3000 * 900 * 2880
    assert sum(Decimal(inv["total"]) for inv in record["invoices"]) == Decimal(summary["invoiced_total"])
    demand = {
        inv["customer_id"]: [ln["amount"] for ln in inv["lines"] if ln["kind"] == "demand"]
        for inv in record["invoices"]
    }
    assert demand == {"acme": ["60.00"], "bitfarm": ["30.00"]}  # 10 USD/kW x 9 kW, split 6:3
    result = verify_evidence((folder / "evidence.json").read_bytes(), base_dir=folder)
    assert result.ok, result.problems
    # the metered rows the drafts were computed from are the ones signed as input
    assert (folder / "inputs" / "energy_15m.csv").read_text().count("\n") == 1 + 3 * 2880


async def test_the_cli_settles_through_the_gateway_exactly_as_from_the_files(site: Site) -> None:
    """July was settled from the files before the gateway started (revision 1); with the gateway holding
    telemetry.duckdb, the same command settles through the API, prints the same lines and writes the same
    drafts (only the timing and the revision number differ)."""
    r = await asyncio.to_thread(
        cli, site.data, site.config, "settle", "--period", "2024-07", "--api", site.url
    )
    assert r.returncode == 0, r.stderr
    written = re.search(r"^written to (.+)$", r.stdout, re.M)
    assert written is not None
    via_api, from_files = Path(written[1]), site.data / "settlements" / "2024-07-r1"
    assert via_api != from_files and via_api.parent == from_files.parent
    for name in ("settlement.json", "invoices.csv", "invoices.json", "inputs/energy_15m.csv"):
        assert (via_api / name).read_bytes() == (from_files / name).read_bytes(), name
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"settled 2024-07 \(revision \d+\) in \d+\.\d s", lines[0])
    # July: 3 x 3 kW x 744 h + m1's extra 3 kW for 15 minutes
    assert lines[1].startswith("site: 6696.750 kWh (100.00 % covered, 0.00 % estimated); 2 draft(s), ")
    assert lines[1].endswith(" USD; unassigned 0.000 kWh")
    assert lines[2] == f"written to {via_api}" and "never moves" in lines[3]
    # the direct path would have been refused: the gateway holds the file
    r = await asyncio.to_thread(
        cli, site.data, site.config, "settle", "--period", "2024-07", "--api", NO_GATEWAY
    )
    assert r.returncode == 1 and "cannot open read-only" in r.stderr and "Traceback" not in r.stderr


async def test_the_cli_settles_other_data_dirs_from_their_files(site: Site, tmp_path: Path) -> None:
    """A gateway answering at --api that runs on another data dir (a demo on the default port, say) does
    not hold this one's files: the command reads them directly and the gateway's books are untouched."""
    other = tmp_path / "other"
    seed(other)
    before = site.revisions("2024-06")
    r = await asyncio.to_thread(cli, other, site.config, "settle", "--period", "2024-06", "--api", site.url)
    assert r.returncode == 0, r.stderr
    assert f"written to {other / 'settlements' / '2024-06-r1'}" in r.stdout
    assert site.revisions("2024-06") == before
    status, body = await site.call("GET", "/api/energy/settle")
    assert (status, body["site_id"], body["data_dir"]) == (200, "site-h8", str(site.data.resolve()))


async def test_a_second_settle_of_a_running_month_is_refused_and_polling_goes_on(site: Site) -> None:
    """The writer is held busy (a real job on its queue), so the first settle waits for its cursor: the
    same month again gets 409, another month queues behind it, and the API keeps answering meanwhile."""
    gate = threading.Event()
    blocker = site.gateway.store.run(lambda conn: gate.wait(60))
    try:
        june_before = site.revisions("2024-06")
        first = asyncio.create_task(site.call("POST", "/api/energy/settle", json={"period": "2024-06"}))
        running: list[str] = []

        async def settling() -> list[str]:
            status, body = await site.call("GET", "/api/energy/settle")
            assert status == 200
            return list(body["settling"])

        async with asyncio.timeout(30):
            while "2024-06" not in running:
                await asyncio.sleep(0.05)
                running = await settling()
        status, body = await site.call("POST", "/api/energy/settle", json={"period": "2024-06"})
        assert status == 409 and "already being settled" in body["error"]
        other = asyncio.create_task(site.call("POST", "/api/energy/settle", json={"period": "2024-07"}))
        async with asyncio.timeout(30):
            while "2024-07" not in running:
                await asyncio.sleep(0.05)
                running = await settling()
        queued = [
            asyncio.create_task(site.call("POST", "/api/energy/settle", json={"period": p}))
            for p in ("2024-08", "2024-09")
        ]
        async with asyncio.timeout(30):
            while len(running) < 4:
                await asyncio.sleep(0.05)
                running = await settling()
        status, body = await site.call("POST", "/api/energy/settle", json={"period": "2024-10"})
        assert status == 503 and "4 months are queued" in body["error"]
        status, fleet = await site.call("GET", "/api/fleet")  # the event loop is not blocked
        assert status == 200 and len(fleet["miners"]) == 2
        assert not first.done() and not other.done()
    finally:
        gate.set()
    await asyncio.wrap_future(blocker)
    (s1, b1), (s2, b2) = await first, await other
    assert (s1, s2) == (200, 200), (b1, b2)
    assert site.revisions("2024-06") == sorted([*june_before, Path(b1["path"]).name])
    for task in queued:  # August and September: the tariff is in force, nothing was metered
        status, body = await task
        assert status == 200 and body["summary"]["site_kwh"] == "0.000", body
    assert await settling() == []


async def test_bad_settle_requests_are_refused_and_write_nothing(site: Site) -> None:
    before = sorted(p.name for p in (site.data / "settlements").iterdir())
    for raw, message in (
        (b"", "JSON object"),
        (b"{", "JSON object"),
        (b'{"period": "2024-06"', "JSON object"),  # truncated
        (b"[" * 2000 + b"]" * 2000, "JSON object"),
        (b'"2024-06"', "JSON object"),
        (b"\xff\xfe{}", "JSON object"),
        (b"{}", "YYYY-MM"),
    ):
        status, body = await site.call("POST", "/api/energy/settle", data=raw)
        assert (status, message in body["error"]) == (400, True), (raw[:40], body)
    for period in HOSTILE_PERIODS:
        status, body = await site.call("POST", "/api/energy/settle", json={"period": period})
        assert status == 400 and "YYYY-MM" in body["error"], (period, body)
        assert len(body["error"]) < 200  # a hostile value is quoted short, never echoed whole
    status, body = await site.call(
        "POST", "/api/energy/settle", json={"period": "2024-06", "site_id": "other"}
    )
    assert status == 409 and "site-h8" in body["error"]
    status, body = await site.call("POST", "/api/energy/settle", json={"period": "2024-05"})
    assert status == 422 and "no tariff in force in 2024-05" in body["error"]
    huge = b'{"period": "2024-06", "pad": "' + b"x" * (1 << 20) + b'"}'
    status, body = await site.call("POST", "/api/energy/settle", data=huge)
    assert status == 413

    async def trickle() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse up front
        yield b'{"period": "2024-06", "pad": "'
        for _ in range(16):
            yield b"y" * 1024
        yield b'"}'

    status, body = await site.call("POST", "/api/energy/settle", data=trickle())
    assert status == 413

    async def pieces() -> AsyncIterator[bytes]:  # a valid body in fragments is read whole, not cut
        for piece in (b'{"period": ', b'"2024-06", "site_', b'id": "other"}'):
            yield piece
            await asyncio.sleep(0.01)

    status, body = await site.call("POST", "/api/energy/settle", data=pieces())
    assert status == 409 and "not 'other'" in body["error"]
    assert sorted(p.name for p in (site.data / "settlements").iterdir()) == before


async def test_the_cli_reports_gateway_refusals_in_one_line(site: Site, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(SITE_TOML.replace('id = "site-h8"', 'id = "elsewhere"'))
    before = sorted(p.name for p in (site.data / "settlements").iterdir())
    for config, period, code, message in (
        (other, "2024-06", 1, "settles site 'site-h8', not 'elsewhere'"),
        (site.config, "2024-05", 1, "no tariff in force in 2024-05: "),
        (site.config, "\uff12\uff10\uff12\uff14-06", 2, "YYYY-MM"),
    ):
        r = await asyncio.to_thread(cli, site.data, config, "settle", "--period", period, "--api", site.url)
        assert r.returncode == code and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert sorted(p.name for p in (site.data / "settlements").iterdir()) == before


# --- site figures -------------------------------------------------------------------------------------------


async def test_daily_figures_of_june(site: Site) -> None:
    status, body = await site.call("GET", "/api/energy/site?level=day&since=2024-06-01&until=2024-07-01")
    assert status == 200, body
    assert (body["since"], body["until"], body["tz"], body["truncated"]) == (JUNE_1, JULY_1, TZ, False)
    figures = body["figures"]
    assert [f["label"] for f in figures] == [f"2024-06-{d:02d}" for d in range(1, 31)]
    for fig in figures:
        # 3 miners x 3 kW x 24 h = 216 kWh at 0.05 USD = 10.80; 0.4 kg/kWh = 86.4 kg; peak 9 kW
        assert fig["energy"]["kwh"] == "216.000" and fig["energy"]["energy_j"] == 216 * 3_600_000
        assert (fig["energy"]["coverage_pct"], fig["energy"]["estimated_pct"]) == ("100.00", "0.00")
        assert (fig["cost"], fig["currency"]) == ("10.80", "USD")
        assert fig["co2"]["kg"] == "86.400" and fig["co2"]["factor"]["source"] == "test factor"
        assert fig["peak"]["kw"] == "9.000"


async def test_monthly_and_hourly_figures(site: Site) -> None:
    status, body = await site.call("GET", f"/api/energy/site?level=month&since={JUNE_1}&until={AUG_1}")
    assert status == 200, body
    june, july = body["figures"]
    assert (june["label"], june["energy"]["kwh"], june["cost"], june["peak"]["kw"]) == (
        "2024-06",
        "6480.000",
        "324.00",
        "9.000",
    )
    # m1's one 6 kW interval: +0.75 kWh and a 12 kW peak at 02:00 local on July 1
    assert (july["energy"]["kwh"], july["peak"]["kw"], july["peak"]["interval_start"]) == (
        "6696.750",
        "12.000",
        JULY_1 + 7200,
    )
    status, body = await site.call("GET", "/api/energy/site?level=hour&since=2024-06-02&until=2024-06-03")
    assert status == 200
    assert len(body["figures"]) == 24 and {f["energy"]["kwh"] for f in body["figures"]} == {"9.000"}
    status, body = await site.call("GET", "/api/energy/site?level=day&since=2001-01-01&until=2001-02-01")
    assert (status, body["figures"]) == (200, [])
    status, body = await site.call("GET", "/api/energy/site")  # defaults: the last 31 days
    assert status == 200 and body["level"] == "day" and body["until"] - body["since"] == 31 * 86_400


async def test_bad_figure_queries_are_refused(site: Site) -> None:
    for query, message in (
        ("level=week", "level must be one of hour, day, month"),
        ("level=" + "x" * 5_000, "level must be one of"),
        ("since=abc", "since must be UTC epoch seconds or YYYY-MM-DD"),
        ("since=2024-13-45", "since must be"),
        ("since=1e9", "since must be"),
        ("since=-5", "since must be"),
        ("since=%EF%BC%99%EF%BC%99", "since must be"),  # full-width digits
        ("until=" + "9" * 5000, "until must be"),
        ("until=9007199254740993", "until must be"),  # beyond 2**53
        ("since=2024-06-01%0A", "since must be"),
        ("since=%3DHYPERLINK(1)", "since must be"),
        ("since=2024-07-01&until=2024-06-01", "must be after since"),
        ("since=2024-06-01&until=2024-06-01", "must be after since"),
    ):
        status, body = await site.call("GET", f"/api/energy/site?{query}")
        assert status == 400 and message in body["error"], (query, body)
        assert len(body["error"]) < 200
    # a request line over 8 KiB never reaches the handler: aiohttp's parser refuses it
    async with site.session.get(f"{site.url}/api/energy/site?since={'9' * 10_000}") as response:
        assert response.status == 400


async def test_energy_site_command(site: Site) -> None:
    def energy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HASHINSIGHT, "energy", "site", *args], capture_output=True, text=True, timeout=60, check=False
        )

    r = await asyncio.to_thread(energy, "--level", "month", "--since", "2024-06-01", "--until", "2024-08-01",
                                "--api", site.url)  # fmt: skip
    assert r.returncode == 0, r.stderr
    header, june, july = r.stdout.splitlines()
    assert header.split()[:7] == ["period", "kWh", "coverage", "estimated", "cost", "peak", "kW"]
    assert june.split() == [
        "2024-06",
        "6480.000",
        "100.00",
        "%",
        "0.00",
        "%",
        "324.00",
        "USD",
        "9.000",
        "2592.000",
    ]
    assert july.split()[:2] == ["2024-07", "6696.750"] and july.split()[-2] == "12.000"
    r = await asyncio.to_thread(energy, "--level", "week", "--api", site.url)
    assert r.returncode == 2 and "hour, day or month" in r.stderr
    r = await asyncio.to_thread(energy, "--since", "June", "--api", site.url)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr
    r = await asyncio.to_thread(energy, "--since", "2024-02-30", "--api", site.url)
    assert r.returncode == 2 and "since must be" in r.stderr and "(HTTP 400)" in r.stderr
    r = await asyncio.to_thread(energy, "--api", NO_GATEWAY)
    assert r.returncode == 1 and "no gateway answering" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


async def test_stopping_the_gateway_finishes_the_settlement_in_progress(tmp_path: Path) -> None:
    """SIGTERM while a month is being settled: the API's cleanup waits for that settlement before the store
    closes, so the revision is complete and verifiable, and no temporary directory is left behind."""
    data, config = tmp_path / "data", tmp_path / "site.toml"
    config.write_text(SITE_TOML)
    seed(data)
    settings = load_settings(config, demo=True, api={"host": "127.86.255.3", "port": 0})
    gateway = Gateway(settings, data, profiles=PROFILES)
    await gateway.start()
    gate = threading.Event()
    try:
        blocker = gateway.store.run(lambda conn: gate.wait(60))
        async with aiohttp.ClientSession() as session:
            url = f"http://127.86.255.3:{gateway.api_port}/api/energy/settle"
            request = asyncio.create_task(session.post(url, json={"period": "2024-06"}))
            async with asyncio.timeout(30):
                while True:
                    async with session.get(url) as response:
                        if (await response.json())["settling"] == ["2024-06"]:
                            break
                    await asyncio.sleep(0.05)
            stopping = asyncio.create_task(gateway.stop())
            await asyncio.sleep(1.5)  # past aiohttp's 1 s handler grace, into the API's cleanup
            assert not stopping.done()
            gate.set()
            await stopping
            # complete the moment the stop returns: the store closed after the revision was written
            assert (data / "settlements" / "2024-06-r1" / "evidence.json").exists()
            await asyncio.wrap_future(blocker)
            with contextlib.suppress(aiohttp.ClientError):
                (await request).close()
    finally:
        gate.set()
    folder = data / "settlements" / "2024-06-r1"
    assert verify_evidence((folder / "evidence.json").read_bytes(), base_dir=folder).ok
    assert [p.name for p in (data / "settlements").iterdir()] == ["2024-06-r1"]


async def test_check_period_accepts_exactly_ascii_year_months() -> None:
    """Property: whatever the text, `check_period` returns it only when it is YYYY-MM in ASCII with a
    month 01-12 (safe to name a directory after), and every such period is accepted."""
    valid = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])", re.ASCII)

    @hypothesis_settings(max_examples=100, deadline=None)
    @given(st.one_of(st.text(max_size=12), st.from_regex(r"\A\d{4}-\d{2}\s?\Z")))
    def any_text(text: str) -> None:
        try:
            accepted = check_period(text)
        except ValueError as err:
            assert valid.fullmatch(text) is None and len(str(err)) < 200
        else:
            assert accepted == text and valid.fullmatch(text)

    @hypothesis_settings(max_examples=50, deadline=None)
    @given(st.integers(0, 9999), st.integers(1, 12))
    def every_month(year: int, month: int) -> None:
        assert check_period(f"{year:04d}-{month:02d}") == f"{year:04d}-{month:02d}"

    any_text()
    every_month()
