"""The alert endpoints and `hashinsight alerts ...` against a real running gateway: a `Gateway` with an
empty inventory (its API on 127.0.0.1, a free port), whose lifecycle the tests seed directly with
findings, as the poll cycle would. One gateway serves the module; each test uses its own miner ids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway import audit
from gateway.config import load_settings
from gateway.rules.findings import Finding, FindingState, Severity
from gateway.runtime import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")
HASHINSIGHT = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"


@dataclass
class Site:
    gateway: Gateway
    url: str
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, body: Any = None, *, raw: str | None = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.request(method, self.url + path, **kwargs) as response:
            assert response.content_type == "application/json", await response.text()
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, answer
        return answer

    def seed(self, miner: str, rule: str = "overheat_crit", severity: Severity = Severity.P0) -> int:
        """Two firing findings 30 s apart: the default policy's debounce."""
        now = int(time.time())
        for ts in (now - 30, now):
            finding = Finding(
                miner_id=miner, rule_id=rule, severity=severity, state=FindingState.FIRING, ts=ts,
                value=91.0, threshold=85.0, detail=f"chip 91 C >= 85 C on {miner}",
            )  # fmt: skip
            events = self.gateway.alerts.apply([finding], ts)
        (opened,) = events
        return opened.alert_id

    async def alerts(self, **query: str) -> list[dict[str, Any]]:
        answer = await self.ok("GET", "/api/alerts?" + "&".join(f"{k}={v}" for k, v in query.items()))
        assert answer["count"] == len(answer["alerts"])
        return list(answer["alerts"])


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    settings = load_settings(
        None,
        demo=True,
        polling={"interval_s": 2.0, "deadline_s": 1.0, "spread": 0.25},
        api={"host": "127.0.0.1", "port": 0},
    )
    gateway = Gateway(settings, tmp_path_factory.mktemp("gateway"))
    await gateway.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            yield Site(gateway, f"http://127.0.0.1:{gateway.api_port}", session)
    finally:
        await gateway.stop()


async def test_lists_open_alerts_with_the_fields_the_issue_names(site: Site) -> None:
    crit = site.seed("m-list-1")
    fan = site.seed("m-list-2", "fan_zero", Severity.P1)
    rows = [a for a in await site.alerts() if a["miner_id"].startswith("m-list")]
    assert [(a["id"], a["miner_id"], a["rule"], a["severity"]) for a in rows] == [
        (crit, "m-list-1", "overheat_crit", "P0"),
        (fan, "m-list-2", "fan_zero", "P1"),
    ]
    first = rows[0]
    assert isinstance(first["opened_at"], int) and abs(first["opened_at"] - time.time()) < 60
    assert (first["state"], first["acked_by"], first["suppressed_until"]) == ("open", None, None)
    assert (first["detail"], first["last_value"]) == ("chip 91 C >= 85 C on m-list-1", 91.0)


async def test_filters(site: Site) -> None:
    crit = site.seed("m-filter-1")
    fan = site.seed("m-filter-2", "fan_zero", Severity.P1)
    assert [a["id"] for a in await site.alerts(miner_id="m-filter-2")] == [fan]
    assert [a["id"] for a in await site.alerts(severity="P1", miner_id="m-filter-2")] == [fan]
    assert [a["id"] for a in await site.alerts(severity="P1", miner_id="m-filter-1")] == []
    assert [
        a["id"] for a in await site.alerts(severity="p0,P1", rule="overheat_crit", miner_id="m-filter-1")
    ] == [crit]
    for query, message in [
        ("severity=P9", "unknown severity"),
        ("state=sleeping", "state must be one of"),
        ("limit=0", "limit must be"),
        ("limit=ten", "limit must be"),
    ]:
        status, answer = await site.call("GET", "/api/alerts?" + query)
        assert status == 400 and message in answer["error"], (query, answer)


async def test_ack_and_its_audit_trail(site: Site) -> None:
    alert_id = site.seed("m-ack")
    answer = await site.ok("POST", f"/api/alerts/{alert_id}/ack", {"actor": "alice", "note": "on it"})
    assert (answer["alert"]["state"], answer["alert"]["acked_by"]) == ("acked", "alice")
    assert [e["kind"] for e in answer["events"]] == ["acked"]
    assert [a["id"] for a in await site.alerts(state="acked", miner_id="m-ack")] == [alert_id]
    assert await site.alerts(state="unacked", miner_id="m-ack") == []
    again = await site.ok("POST", f"/api/alerts/{alert_id}/ack", {"actor": "bob"})
    assert again["events"] == [] and again["alert"]["acked_by"] == "alice"
    shown = await site.ok("GET", f"/api/alerts/{alert_id}")
    assert [(h["kind"], h["actor"]) for h in shown["history"]] == [("opened", "system"), ("acked", "alice")]
    conn = site.gateway.alerts._conn
    assert audit.verify(conn) == (True, None)
    assert [(e.actor, e.action) for e in audit.entries(conn) if e.target == f"alert:{alert_id}"] == [
        ("alice", "alert.acked")
    ]


async def test_bad_requests_get_a_json_error(site: Site) -> None:
    alert_id = site.seed("m-bad")
    cases: list[tuple[str, Any, str | None, int, str]] = [
        (f"/api/alerts/{alert_id}/ack", {}, None, 400, "actor is required"),
        (f"/api/alerts/{alert_id}/ack", {"actor": "   "}, None, 400, "actor is required"),
        (f"/api/alerts/{alert_id}/ack", {"actor": 7}, None, 400, "actor is required"),
        (f"/api/alerts/{alert_id}/ack", None, "{not json", 400, "JSON object"),
        (f"/api/alerts/{alert_id}/ack", ["alice"], None, 400, "JSON object"),
        (f"/api/alerts/{alert_id}/ack", {"actor": "alice", "note": 5}, None, 400, "note must be a string"),
        ("/api/alerts/abc/ack", {"actor": "alice"}, None, 400, "positive integers"),
        ("/api/alerts/0/resolve", {"actor": "alice"}, None, 400, "positive integers"),
        ("/api/alerts/999999/ack", {"actor": "alice"}, None, 404, "no alert 999999"),
        (
            "/api/alerts/999999/suppress",
            {"actor": "a", "until": "2999-01-01T00:00Z", "reason": "x"},
            None,
            404,
            "",
        ),
    ]
    for path, body, raw, status, message in cases:
        got, answer = await site.call("POST", path, body, raw=raw)
        assert (got, message in answer["error"]) == (status, True), (path, body, answer)
    status, answer = await site.call("GET", "/api/alerts/999999")
    assert status == 404 and answer == {"error": "no alert 999999"}
    assert [h["kind"] for h in (await site.ok("GET", f"/api/alerts/{alert_id}"))["history"]] == ["opened"]


async def test_suppress_until_a_time_with_a_reason(site: Site) -> None:
    alert_id = site.seed("m-suppress")
    path = f"/api/alerts/{alert_id}/suppress"
    later = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    for body, message in [
        ({"actor": "alice", "reason": "maintenance"}, "until is required"),
        ({"actor": "alice", "until": True, "reason": "maintenance"}, "until is required"),
        ({"actor": "alice", "until": "tomorrow", "reason": "maintenance"}, "not an ISO 8601 time"),
        ({"actor": "alice", "until": later.replace(tzinfo=None).isoformat(), "reason": "x"}, "needs a zone"),
        ({"actor": "alice", "until": int(time.time()) - 60, "reason": "maintenance"}, "in the future"),
        ({"actor": "alice", "until": later.isoformat()}, "needs a reason"),
    ]:
        status, answer = await site.call("POST", path, body)
        assert status == 400 and message in answer["error"], (body, answer)
    iso = later.isoformat().replace("+00:00", "Z")
    answer = await site.ok("POST", path, {"actor": "alice", "until": iso, "reason": "firmware update"})
    assert answer["alert"]["state"] == "suppressed"
    assert answer["alert"]["suppressed_until"] == int(later.timestamp())
    assert answer["alert"]["suppress_reason"] == "firmware update"
    assert [a["id"] for a in await site.alerts(state="suppressed", miner_id="m-suppress")] == [alert_id]
    assert site.gateway.alerts.is_suppressed(alert_id, int(time.time()))
    answer = await site.ok("POST", f"/api/alerts/{alert_id}/unsuppress", {"actor": "bob"})
    assert answer["alert"]["state"] == "open" and [e["kind"] for e in answer["events"]] == ["unsuppressed"]


async def test_batch_ack_is_all_or_nothing(site: Site) -> None:
    ids = [site.seed(f"m-batch-{i}") for i in range(3)]
    for body, status, message in [
        ({"actor": "bob", "ids": [*ids, 999999]}, 404, "no alert 999999"),
        ({"actor": "bob", "ids": "1,2"}, 400, "non-empty list"),
        ({"actor": "bob", "ids": []}, 400, "non-empty list"),
        ({"actor": "bob", "ids": [ids[0], True]}, 400, "positive integers"),
        ({"ids": ids}, 400, "actor is required"),
    ]:
        got, answer = await site.call("POST", "/api/alerts/ack", body)
        assert got == status and message in answer["error"], (body, answer)
    assert all(a["acked_by"] is None for a in await site.alerts(miner_id="m-batch-0"))
    answer = await site.ok("POST", "/api/alerts/ack", {"actor": "bob", "ids": ids})
    assert sorted(e["alert_id"] for e in answer["events"]) == ids
    assert {a["acked_by"] for a in answer["alerts"]} == {"bob"}


async def test_resolve_by_hand(site: Site) -> None:
    alert_id = site.seed("m-resolve")
    answer = await site.ok("POST", f"/api/alerts/{alert_id}/resolve", {"actor": "carol", "note": "reseated"})
    assert (answer["alert"]["state"], answer["alert"]["resolved_by"]) == ("resolved", "carol")
    assert await site.alerts(miner_id="m-resolve") == []
    assert [a["id"] for a in await site.alerts(state="resolved", miner_id="m-resolve")] == [alert_id]
    status, answer = await site.call("POST", f"/api/alerts/{alert_id}/ack", {"actor": "carol"})
    assert status == 409 and "resolved" in answer["error"]
    history = (await site.ok("GET", f"/api/alerts/{alert_id}"))["history"]
    assert [(h["kind"], h["actor"], h["data"]) for h in history][1:] == [
        ("resolved", "carol", {"note": "reseated"})
    ]


# --- the CLI, as a user runs it -----------------------------------------------------------------------------


async def hashinsight(*args: str, user: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "USER"}
    if user is not None:
        env["USER"] = user
    process = await asyncio.create_subprocess_exec(
        HASHINSIGHT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_cli_list_ack_suppress_resolve(site: Site) -> None:
    a, b = site.seed("m-cli-1"), site.seed("m-cli-2", "fan_zero", Severity.P1)
    code, out, err = await hashinsight("alerts", "list", "--api", site.url, "--miner", "m-cli-1")
    assert code == 0, err
    assert out.split()[:4] == [str(a), "P0", "m-cli-1", "overheat_crit"] and "1 alert(s)" in err
    code, out, _ = await hashinsight("alerts", "list", "--api", site.url, "--severity", "P1", "--json")
    assert code == 0 and b in [x["id"] for x in json.loads(out)["alerts"]]

    code, out, err = await hashinsight("alerts", "ack", str(a), "--api", site.url, "--actor", "alice")
    assert code == 0 and f"alert {a} acked: m-cli-1 overheat_crit -> acked" in out, err
    code, out, err = await hashinsight("alerts", "ack", str(a), str(b), "--api", site.url, user="dave")
    assert code == 0 and "acked 1 of 2" in out, err  # `a` was already acked; $USER is the default actor
    assert site.gateway.alerts.get(b).acked_by == "dave"  # type: ignore[union-attr]

    code, out, err = await hashinsight(
        "alerts", "suppress", str(b), "--for", "2h", "--reason", "fan swap", "--api", site.url, user="dave"
    )
    assert code == 0 and "-> suppressed" in out, err
    until = site.gateway.alerts.get(b).suppressed_until  # type: ignore[union-attr]
    assert until is not None and abs(until - (time.time() + 7200)) < 60
    code, _, err = await hashinsight(
        "alerts", "suppress", str(b), "--reason", "x", "--api", site.url, user="dave"
    )
    assert code == 2 and "exactly one of --for" in err

    code, out, err = await hashinsight(
        "alerts", "resolve", str(a), "--note", "fixed", "--api", site.url, user="eve"
    )
    assert code == 0 and "-> resolved" in out, err
    code, out, err = await hashinsight("alerts", "show", str(a), "--api", site.url)
    assert code == 0 and [line.split()[2] for line in out.splitlines()[1:]] == ["opened", "acked", "resolved"]

    code, out, err = await hashinsight("alerts", "ack", "999999", "--api", site.url, user="eve")
    assert (code, out) == (1, "") and "no alert 999999 (HTTP 404)" in err and "Traceback" not in err
    code, _, err = await hashinsight("alerts", "ack", str(b), "--api", site.url)  # no $USER, no --actor
    assert code == 2 and "--actor" in err
