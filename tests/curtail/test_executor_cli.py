"""`hashinsight curtail show | apply | override` and the targets file they read.

Addresses 127.73.x.x belong to this module.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gateway.cli.curtail_ops import register
from gateway.curtail import executor_store, override
from gateway.curtail.executor_apply import MAX_TARGETS_BYTES, TargetsError, parse_targets
from gateway.store.state import InventoryRow, upsert_miners
from tests.curtail.executor_support import state_db
from tests.simulator.conftest import simulator

NOW = 1_720_000_000
app = typer.Typer()
register(app)
runner = CliRunner()


def test_targets_are_parsed() -> None:
    assert parse_targets(b'{"S21 Pro:normal": 3, "whatsminer_m30s_plus|low": 0}') == {
        "S21 Pro:normal": 3,
        "whatsminer_m30s_plus|low": 0,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"antminer_s21|normal": 3', "not JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"antminer_s21 normal": 3}', "is not '<model>:<mode>'"),
        (b'{"=HYPERLINK(\\"http://x\\")|normal": 1}', "characters a profile key never has"),
        (b'{"antminer_s21|normal": -1}', "whole number"),
        (b'{"antminer_s21|normal": true}', "whole number"),
        (b'{"antminer_s21|normal": 2.5}', "whole number"),
        (b'{"antminer_s21|normal": 10000000}', "whole number"),
        (b"\xff\xfe{}", "not JSON"),
        (json.dumps({f"m{i}|normal": 1 for i in range(1001)}).encode(), "over the limit of 1000"),
        (b" " * (MAX_TARGETS_BYTES + 1), "over the 65536-byte limit"),
        (json.dumps({"a" * 500 + "|normal": 1}).encode(), "is not '<model>:<mode>'"),
    ],
)
def test_bad_targets_get_one_line_errors(data: bytes, message: str) -> None:
    with pytest.raises(TargetsError, match=message) as caught:
        parse_targets(data, source="spike.json")
    assert str(caught.value).startswith("spike.json: ") and "\n" not in str(caught.value)


def test_show_prints_events_actions_and_overrides(tmp_path: Path) -> None:
    conn = state_db(tmp_path)
    event = executor_store.insert_event(
        conn,
        now=NOW,
        source="plan",
        reason="price spike",
        targets={"antminer_s21|normal": 2},
        asked_w=6970.0,
        skips={"phantom_load": 1},
        actor="curtail.executor",
    )
    memory = executor_store.MinerMemory(miner_id="m1", intended="sleep")
    executor_store.insert_action(
        conn, event_id=event, now=NOW, miner_id="m1", action="sleep", reason="plan", attempt=1,
        baseline_w=3500.0, expected_w=15.0, memory=memory, actor="curtail.executor",
    )  # fmt: skip
    executor_store.set_realised(conn, event, 6900.0, NOW + 60)
    override.add(conn, miner_id="m2", action="hold", duration_s=10**5, actor="ops", now=10**10 - 10)
    conn.close()
    result = runner.invoke(app, ["show", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "price spike | asked 6.970 kW, realised 6.900 kW" in result.output
    assert "skipped: phantom_load=1" in result.output
    assert "sleep m1 (plan): issued" in result.output
    as_json = json.loads(runner.invoke(app, ["show", "--json", "--data-dir", str(tmp_path)]).output)
    assert as_json["events"][0]["asked_kw"] == 6.97 and as_json["events"][0]["actions"][0]["miner_id"] == "m1"


def test_show_without_a_database_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no state database" in result.output


def test_help_teaches() -> None:
    for command in ("show", "apply", "override"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example:" in result.output


def test_bad_override_usage_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["override", "m1", "--for", "forever", "--actor", "ops", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--for 'forever'" in result.output


def test_override_cli_sets_and_clears(tmp_path: Path) -> None:
    conn = state_db(tmp_path)
    upsert_miners(conn, [InventoryRow(id="m1", ip="127.73.0.1", family="antminer")], NOW)
    conn.close()
    args = ["--actor", "ops", "--data-dir", str(tmp_path)]
    made = runner.invoke(app, ["override", "m1", "--action", "force_off", "--for", "4h", *args])
    assert made.exit_code == 0 and made.output.startswith("force_off m1 until")
    unknown = runner.invoke(app, ["override", "m9", "--action", "hold", *args])
    assert unknown.exit_code == 1 and "not in the inventory" in unknown.output
    cleared = runner.invoke(app, ["override", "m1", "--action", "clear", *args])
    assert cleared.exit_code == 0 and "cleared 1 override" in cleared.output


async def test_apply_dry_run_against_the_simulator(tmp_path: Path) -> None:
    async with simulator("s21=1", "127.73.0.1", miners=2) as sim:
        conn = state_db(tmp_path)
        rows = [
            InventoryRow(
                id=m.ip, ip=m.ip, family=m.identity.family.value, model=m.identity.model,
                profile_key=m.profile.key, web_port=m.web_port,
            )
            for m in sim.miners
        ]  # fmt: skip
        upsert_miners(conn, rows, NOW)
        conn.close()
        spec = tmp_path / "spike.json"
        spec.write_text('{"S21:normal": 1}')  # as `curtail plan` names its classes
        site = tmp_path / "site.toml"
        site.write_text("demo = true\n")  # the simulator keeps factory passwords
        args = ["apply", "--targets", str(spec), "--config", str(site), "--data-dir", str(tmp_path)]
        result = await asyncio.to_thread(runner.invoke, app, args)
        assert result.exit_code == 0, result.output
        assert "would sleep" in result.output
        assert all(m.physics.mode.value == "normal" for m in sim.miners)
        executed = await asyncio.to_thread(runner.invoke, app, [*args, "--execute"])
        assert executed.exit_code == 0, executed.output
        assert "will sleep" in executed.output
        assert sorted(m.physics.mode.value for m in sim.miners) == ["normal", "sleep"]
        shown = await asyncio.to_thread(runner.invoke, app, ["show", "--data-dir", str(tmp_path)])
        assert "manual: hashinsight curtail apply" in shown.output and ": verified" not in shown.output
