"""The local API of a real running gateway, over HTTP: a `Gateway` polling a small simulated fleet
(127.81.x.x belongs to this module), its data dir in a temporary directory, the API on a free port.

One gateway serves the whole module (it takes a few poll cycles to have something to show): the
tests only read from it, so their order does not matter.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio

from gateway.config import load_settings
from gateway.demo import CUSTOMERS, register
from gateway.runtime import Gateway
from gateway.simulator.run import Simulator
from tests.devices.capture import PROFILES
from tests.simulator.conftest import FaultApi, simulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

HASHINSIGHT = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"
INTERVAL_S = 2.0
TIERS = ("raw", "5m", "daily", "energy")


@dataclass
class Site:
    gateway: Gateway
    sim: Simulator
    url: str
    session: aiohttp.ClientSession
    offline_id: str
    healthy_ids: list[str]
    ready_at: int

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(self.url + path) as response:
            return response.status, response.content_type, await response.text()

    async def json(self, path: str) -> Any:
        status, content_type, body = await self.get(path)
        assert (status, content_type) == (200, "application/json"), body
        return json.loads(body)


async def until(condition: Callable[[], bool], guard_s: float = 60.0) -> None:
    """Wait for `condition`; the guard only stops a stuck test, it is not a performance bound."""
    async with asyncio.timeout(guard_s):
        while not condition():  # noqa: ASYNC110 (the condition is the gateway's state, not an event)
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    """Four simulated miners (two stock Antminer, two Vnish), one of them powered off; the gateway
    polls every 2 s and calls a miner offline at its first failure. Ready once three cycles are
    written and the rollup jobs have run once (the scheduler runs them every 5 min; here they are
    run directly, as the scheduler would)."""
    data_dir = tmp_path_factory.mktemp("gateway")
    settings = load_settings(
        None,
        demo=True,
        polling={"interval_s": INTERVAL_S, "deadline_s": 1.0, "spread": 0.25, "offline_after_failures": 1},
        api={"host": "127.81.255.1", "port": 0},
    )
    async with simulator("s19=0.5,s21pro@vnish=0.5", "127.81.0.1", miners=4) as sim:
        register(data_dir, sim)
        async with aiohttp.ClientSession() as session:
            down = sim.miners[1]
            await FaultApi(sim.control_url, session).inject(down.ip, "offline")
            gateway = Gateway(settings, data_dir, profiles=PROFILES)
            await gateway.start()
            try:
                await until(lambda: gateway.poller.totals.cycles >= 3)
                assert await asyncio.to_thread(gateway.store.flush)
                now = int(time.time())
                await asyncio.wrap_future(gateway.store.rollup_5m(now))
                await asyncio.wrap_future(gateway.store.rollup_daily(now))
                yield Site(
                    gateway=gateway,
                    sim=sim,
                    url=f"http://127.81.255.1:{gateway.api_port}",
                    session=session,
                    offline_id=down.identity.mac.lower(),
                    healthy_ids=[m.identity.mac.lower() for m in sim.miners if m is not down],
                    ready_at=now,
                )
            finally:
                await gateway.stop()


async def test_healthz_is_ok_while_cycles_complete(site: Site) -> None:
    body = await site.json("/healthz")
    assert body["status"] == "ok"
    assert 0 <= body["last_cycle_age_s"] <= 3 * INTERVAL_S


SAMPLE_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*\})? (\S+)$'
)


def parse_prometheus(text: str) -> dict[str, dict[str, Any]]:
    """A strict reader of the Prometheus text format (0.0.4): every family has HELP and TYPE before its
    samples, every sample belongs to a declared family, every value is a number."""
    families: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert name not in families, f"family {name} declared twice"
            families[name] = {"help": help_text, "type": None, "samples": {}}
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name in families and families[name]["type"] is None, line
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}, line
            families[name]["type"] = kind
        else:
            match = SAMPLE_LINE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in families and families[name]["type"], f"sample of an undeclared family: {line!r}"
            number = float(value)
            assert not math.isnan(number), line
            families[name]["samples"][labels or ""] = number
    return families


async def test_metrics_are_valid_prometheus_text_with_the_gateways_figures(site: Site) -> None:
    status, content_type, text = await site.get("/metrics")
    assert (status, content_type) == (200, "text/plain")
    metrics = parse_prometheus(text)

    def one(name: str, kind: str) -> float:
        family = metrics[f"hashinsight_{name}"]
        assert family["type"] == kind, name
        (value,) = family["samples"].values()
        return float(value)

    assert 0 < one("poll_cycle_duration_seconds", "gauge") < INTERVAL_S  # cycles end within the interval
    assert one("poll_cycle_lateness_seconds", "gauge") >= 0
    assert one("poll_cycles_total", "counter") >= 3
    assert one("telemetry_queue_depth", "gauge") >= 0
    assert one("telemetry_write_errors_total", "counter") == 0
    assert one("telemetry_last_write_seconds", "gauge") >= 0
    miners = metrics["hashinsight_miners"]
    assert miners["type"] == "gauge"
    assert miners["samples"]['{availability="offline"}'] == 1
    assert miners["samples"]['{availability="ok"}'] == 3
    assert sum(miners["samples"].values()) == 4
    errors = metrics["hashinsight_poll_errors_total"]
    assert errors["type"] == "counter"
    assert errors["samples"]['{kind="Unreachable"}'] >= 1  # the powered-off miner: connection refused
    sizes = metrics["hashinsight_db_size_bytes"]
    assert sizes["type"] == "gauge"
    assert sizes["samples"]['{db="telemetry"}'] > 0 and sizes["samples"]['{db="state"}'] > 0


async def test_fleet_lists_every_miner_with_its_availability(site: Site) -> None:
    fleet = await site.json("/api/fleet")
    assert fleet["site"] == {"id": "site-1", "name": "HashInsight site"}
    by_id = {m["id"]: m for m in fleet["miners"]}
    assert set(by_id) == {site.offline_id, *site.healthy_ids}
    down = by_id[site.offline_id]
    # Never read: no reading to show; its status says offline (figures are those of the last reading).
    assert (down["availability"], down["status"], down["ts"], down["hashrate_ths"]) == (
        "offline",
        "offline",
        None,
        None,
    )
    for miner_id in site.healthy_ids:
        miner = by_id[miner_id]
        assert (miner["availability"], miner["status"]) == ("ok", "mining"), miner
        assert miner["hashrate_ths"] > 0 and miner["power_w"] > 0 and miner["ts"] >= site.ready_at - 10
        assert miner["customer_id"] in CUSTOMERS
    totals = fleet["totals"]
    assert totals["miners"] == 4
    assert totals["by_availability"]["ok"] == 3 and totals["by_availability"]["offline"] == 1
    assert totals["hashrate_ths"] == pytest.approx(
        sum(by_id[i]["hashrate_ths"] for i in site.healthy_ids), abs=0.01
    )
    assert totals["last_cycle"]["succeeded"] == 3


async def test_one_miner_in_detail(site: Site) -> None:
    healthy = await site.json(f"/api/miners/{site.healthy_ids[0]}")
    assert healthy["availability"] == "ok" and healthy["consecutive_failures"] == 0
    assert healthy["last_error"] is None
    assert healthy["sample"]["miner_id"] == site.healthy_ids[0] and healthy["sample"]["status"] == "mining"
    assert healthy["sample"]["boards"] and healthy["last_good_ts"] == healthy["sample"]["ts"]

    down = await site.json(f"/api/miners/{site.offline_id}")
    assert down["availability"] == "offline" and down["consecutive_failures"] >= 1
    assert down["last_error"].startswith("Unreachable:") and "refused" in down["last_error"]
    assert down["sample"] is None and down["last_good_ts"] is None  # never read well


async def test_history_of_every_tier_within_from_and_to(site: Site) -> None:
    miner_id = site.healthy_ids[0]
    start, end = site.ready_at - 2 * 86_400, site.ready_at + 3600
    for tier in TIERS:
        body = await site.json(f"/api/miners/{miner_id}/history?tier={tier}&from={start}&to={end}")
        assert (body["miner_id"], body["tier"], body["from"], body["to"]) == (miner_id, tier, start, end)
        assert body["rows"], f"no {tier} rows"
        stamps = [row["ts"] for row in body["rows"]]
        assert stamps == sorted(stamps) and all(start <= ts < end for ts in stamps), tier
        assert body["truncated"] is False
    raw = await site.json(f"/api/miners/{miner_id}/history?tier=raw&from={start}&to={end}")
    assert len(raw["rows"]) >= 3 and all(
        row["status"] == "mining" and row["power_w"] > 0 for row in raw["rows"]
    )
    energy = await site.json(f"/api/miners/{miner_id}/history?tier=energy&from={start}&to={end}")
    assert all(row["ts"] % 900 == 0 and row["joules"] > 0 for row in energy["rows"])
    daily = await site.json(f"/api/miners/{miner_id}/history?tier=daily&from={start}&to={end}")
    assert [row["ts"] for row in daily["rows"]][-1] == site.ready_at // 86_400 * 86_400  # a UTC midnight

    first = raw["rows"][0]["ts"]  # `to` is exclusive, `from` inclusive
    assert (await site.json(f"/api/miners/{miner_id}/history?from={first}&to={first}"))["rows"] == []
    only = await site.json(f"/api/miners/{miner_id}/history?from={first}&to={first + 1}")
    assert [row["ts"] for row in only["rows"]] == [first]
    default = await site.json(f"/api/miners/{miner_id}/history")  # raw, the last hour
    assert default["tier"] == "raw" and default["to"] - default["from"] == 3600 and default["rows"]
    down = await site.json(f"/api/miners/{site.offline_id}/history?tier=raw&from={start}&to={end}")
    assert down["rows"] and {row["status"] for row in down["rows"]} == {"offline"}


HOSTILE_IDS = [
    "nope",
    "' OR '1'='1",
    "x'; DROP TABLE samples_raw; --",
    'quote"and\\backslash',
    "\x00nul",
    "é" * 50,
    "a" * 4000,
]


@pytest.mark.parametrize("miner_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
async def test_unknown_or_hostile_miner_ids_are_404_with_a_json_error(site: Site, miner_id: str) -> None:
    for suffix in ("", "/history"):
        status, content_type, body = await site.get(f"/api/miners/{quote(miner_id, safe='')}{suffix}")
        assert (status, content_type) == (404, "application/json"), body
        assert "in the inventory" in json.loads(body)["error"]


BAD_QUERIES = [
    "tier=hourly",
    "tier=raw'%20OR%201=1%20--",
    "tier=" + "r" * 3000,
    "from=abc",
    "from=1e9",
    "from=1.5",
    "to=",
    "from=1;%20DROP%20TABLE%20samples_raw",
    "from=" + "9" * 5000,
    "from=200&to=100",
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=range(len(BAD_QUERIES)))
async def test_bad_history_queries_are_400_with_a_json_error(site: Site, query: str) -> None:
    status, content_type, body = await site.get(f"/api/miners/{site.healthy_ids[0]}/history?{query}")
    assert (status, content_type) == (400, "application/json"), body
    assert json.loads(body)["error"]


EXTREME_QUERIES = ["from=" + "9" * 30, "from=-" + "9" * 30, "to=" + "9" * 30, "from=-5&to=0", "from=0&to=1"]


@pytest.mark.parametrize("query", EXTREME_QUERIES, ids=range(len(EXTREME_QUERIES)))
async def test_numbers_beyond_any_time_are_handled_never_a_server_error(site: Site, query: str) -> None:
    """Integers far outside BIGINT (which DuckDB compares as HUGEINT) or before 1970: either refused
    with 400 or answered with exactly the rows inside [from, to), never a 500 or a traceback."""
    status, _, body = await site.get(f"/api/miners/{site.healthy_ids[0]}/history?{query}")
    assert status in (200, 400), body
    assert "Traceback" not in body
    if status == 200:
        answer = json.loads(body)
        assert all(answer["from"] <= row["ts"] < answer["to"] for row in answer["rows"])


async def test_hostile_requests_leave_the_gateway_and_its_data_intact(site: Site) -> None:
    status, _, body = await site.get("/api/miners/" + "b" * 20_000)  # longer than a request line may be
    assert 400 <= status < 500 and "Traceback" not in body
    count = await asyncio.to_thread(site.gateway.store.query, "SELECT count(*) AS n FROM samples_raw")
    assert count[0]["n"] > 0
    assert (await site.json("/healthz"))["status"] == "ok"


async def test_status_command_prints_the_fleet_summary(site: Site) -> None:
    process = await asyncio.create_subprocess_exec(
        HASHINSIGHT,
        "status",
        "--api",
        site.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[0] == "HashInsight site (site-1)"
    assert re.fullmatch(
        r"miners 4: ok 3, offline 1 \| \d+\.\d{3} PH/s \| \d+\.\d kW \| last cycle \d+\.\d\d s", lines[1]
    ), lines[1]
    down = next(m for m in site.sim.miners if m.identity.mac.lower() == site.offline_id)
    assert lines[2:] == [f"  offline  {down.ip:15} {down.identity.make} {down.identity.model}"]

    process = await asyncio.create_subprocess_exec(
        HASHINSIGHT, "status", "--api", site.url, "--json", stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    assert {m["id"] for m in json.loads(stdout)["miners"]} == {site.offline_id, *site.healthy_ids}


async def test_status_command_without_a_gateway_says_so(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        HASHINSIGHT, "status", "--api", "http://127.81.255.2:9", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and stdout == b""
    assert "no gateway answering at http://127.81.255.2:9" in stderr.decode()
    assert "Traceback" not in stderr.decode()
