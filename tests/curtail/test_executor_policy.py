"""Fail policy (pure) and manual overrides (pure resolution; real SQLite and audit chain for storage)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import audit
from gateway.curtail import override
from gateway.curtail.fail_policy import Decision, FailPolicy, Input, Response, decide
from gateway.curtail.override import Override, OverrideAction, resolve
from tests.curtail.executor_support import state_db

NOW = 1_720_000_000
FULL = {"a|normal": 10, "b|normal": 4}
CURRENT = {"a|normal": 7, "b|normal": 4}


def test_healthy_inputs_follow_the_plan() -> None:
    assert decide([], FailPolicy(), NOW, current_on=CURRENT, full_on=FULL) == Decision(
        response=None, reason="all inputs healthy", on_by_class=None
    )


def test_defaults_hold_on_stale_prices_and_planner_failure() -> None:
    for failed in (Input.PRICE_FEED, Input.PLANNER):
        decision = decide([failed], FailPolicy(), NOW, current_on=CURRENT, full_on=FULL)
        assert decision.response is Response.HOLD
        assert decision.on_by_class == CURRENT


def test_a_lost_dr_signal_curtails_by_default() -> None:
    decision = decide([Input.DR_SIGNAL], FailPolicy(), NOW, current_on=CURRENT, full_on=FULL)
    assert decision.response is Response.CURTAIL
    assert decision.on_by_class == {"a|normal": 0, "b|normal": 0}
    assert decision.reason == "dr_signal failed: curtail"


def test_the_most_protective_response_wins() -> None:
    policy = FailPolicy(price_feed=Response.RESUME, planner=Response.HOLD)
    assert decide([Input.PRICE_FEED], policy, NOW, current_on=CURRENT, full_on=FULL).on_by_class == FULL
    both = decide([Input.PRICE_FEED, Input.PLANNER], policy, NOW, current_on=CURRENT, full_on=FULL)
    assert both.response is Response.HOLD
    three = decide(list(Input), policy, NOW, current_on=CURRENT, full_on=FULL)
    assert three.response is Response.CURTAIL


def test_inside_a_known_peak_window_any_failure_curtails() -> None:
    policy = FailPolicy(price_feed=Response.RESUME, must_curtail_windows=((NOW - 60, NOW + 900),))
    decision = decide([Input.PRICE_FEED], policy, NOW, current_on=CURRENT, full_on=FULL)
    assert decision.response is Response.CURTAIL and "peak window" in decision.reason
    after = decide([Input.PRICE_FEED], policy, NOW + 900, current_on=CURRENT, full_on=FULL)
    assert after.response is Response.RESUME


def test_curtail_never_turns_miners_on() -> None:
    decision = decide(
        [Input.DR_SIGNAL],
        FailPolicy(),
        NOW,
        current_on={"a|normal": 2},
        full_on=FULL,
        curtailed_on={"a|normal": 5, "b|normal": 1},
    )
    assert decision.on_by_class == {"a|normal": 2, "b|normal": 0}


def test_policy_from_settings() -> None:
    assert FailPolicy.from_mapping({"price_feed": "curtail"}).price_feed is Response.CURTAIL
    with pytest.raises(ValueError, match=r"fail_policy\.dr_signal: 'maybe'"):
        FailPolicy.from_mapping({"dr_signal": "maybe"})
    with pytest.raises(ValueError, match=r"fail_policy\.weather: unknown input"):
        FailPolicy.from_mapping({"weather": "hold"})


@settings(max_examples=100, deadline=None)
@given(
    failed=st.lists(st.sampled_from(list(Input)), unique=True, min_size=1),
    responses=st.tuples(*[st.sampled_from(list(Response))] * 3),
    current=st.fixed_dictionaries({"a|normal": st.integers(0, 10), "b|normal": st.integers(0, 4)}),
    in_window=st.booleans(),
)
def test_a_lost_dr_signal_never_leaves_more_on_than_now_with_default(
    failed: list[Input],
    responses: tuple[Response, Response, Response],
    current: dict[str, int],
    in_window: bool,
) -> None:
    """Whatever else is configured, a failure inside a known peak window, or a lost DR signal under the
    default policy, never raises the load."""
    windows = ((NOW, NOW + 900),) if in_window else ()
    policy = FailPolicy(price_feed=responses[0], planner=responses[1], must_curtail_windows=windows)
    decision = decide(failed, policy, NOW, current_on=current, full_on=FULL)
    assert decision.on_by_class is not None
    if in_window or Input.DR_SIGNAL in failed:
        assert all(decision.on_by_class[k] <= current[k] for k in FULL)
        assert decision.response is Response.CURTAIL


# --- overrides -----------------------------------------------------------------------------------------


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = state_db(tmp_path)
    yield db
    db.close()


def ov(
    id_: int, miner: str, action: OverrideAction, created: int = NOW, expires: int = NOW + 600
) -> Override:
    return Override(
        id=id_, miner_id=miner, action=action, created_ts=created, expires_ts=expires, actor="ops"
    )


def test_resolve_newest_active_wins() -> None:
    items = [
        ov(1, "m1", OverrideAction.FORCE_OFF),
        ov(2, "m1", OverrideAction.HOLD),
        ov(3, "m2", OverrideAction.FORCE_ON, expires=NOW),  # expired exactly now
        ov(4, "m3", OverrideAction.FORCE_ON, created=NOW + 1),  # not yet
    ]
    assert resolve(items, NOW) == {"m1": OverrideAction.HOLD}


def test_add_list_clear_are_audited(conn: sqlite3.Connection) -> None:
    made = override.add(
        conn, miner_id="m1", action="force_off", duration_s=3600, actor="alice", now=NOW, note="fan swap"
    )
    assert made.expires_ts == NOW + 3600
    assert override.active(conn, NOW + 10) == [made]
    assert override.active(conn, NOW + 3600) == []
    assert override.clear(conn, miner_id="m1", actor="bob", now=NOW + 60) == 1
    assert override.active(conn, NOW + 61) == []
    assert override.clear(conn, miner_id="m1", actor="bob", now=NOW + 62) == 0
    entries = audit.entries(conn)
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("alice", "curtail.override", "m1"),
        ("bob", "curtail.override_clear", "m1"),
    ]
    assert audit.verify(conn) == (True, None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "reboot"}, "use hold, force_on or force_off"),
        ({"duration_s": 0}, "must be 1..604800"),
        ({"duration_s": 10**9}, "must be 1..604800"),
        ({"actor": " "}, "needs an actor"),
        ({"miner_id": '=HYPERLINK("x")'}, "is not in the inventory"),
    ],
)
def test_bad_overrides_change_nothing(
    conn: sqlite3.Connection, kwargs: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {
        "miner_id": "m1",
        "action": "hold",
        "duration_s": 60,
        "actor": "ops",
        "now": NOW,
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        override.add(conn, known_miners={"m1": object()}, **values)  # type: ignore[arg-type]
    assert conn.execute("SELECT count(*) FROM curtail_overrides").fetchone()[0] == 0
    assert audit.entries(conn) == []
