"""The alert lifecycle on a real state.db: debounce, clear window, cooldown, what unknown/suspended
findings do, restarts, human actions and their audit trail, and a property over any sequence."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import audit
from gateway.alerts.lifecycle import AlertLifecycle
from gateway.alerts.model import (
    DEFAULT_POLICY,
    AlertConflict,
    AlertError,
    AlertEvent,
    AlertNotFound,
    AlertState,
    Policy,
)
from gateway.alerts.queries import StateFilter
from gateway.alerts.tracks import Phase, load_tracks
from gateway.rules.findings import FindingState, Severity
from tests.alerts.lifecycle_support import (
    INTERVAL,
    POLICIES,
    T0,
    C,
    F,
    Feed,
    S,
    U,
    finding,
    history_kinds,
    kinds,
    open_count,
    open_db,
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = open_db(tmp_path)
    yield db
    db.close()


@pytest.fixture
def lifecycle(conn: sqlite3.Connection) -> AlertLifecycle:
    return AlertLifecycle(conn, POLICIES)


# --- debounce ---------------------------------------------------------------------------------------------


def test_opens_after_n_consecutive_firing_samples(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle, rule="samples")
    assert feed(F, F) == []
    assert lifecycle.pairs_needing_clear() == {("m1", "samples")}  # pending: the engine must report clears
    (opened,) = feed(F)
    assert (opened.kind, opened.severity, opened.ts) == ("opened", Severity.P1, T0 + 2 * INTERVAL)
    alert = lifecycle.get(opened.alert_id)
    assert alert is not None and alert.first_seen_at == T0 and alert.opened_at == T0 + 2 * INTERVAL


def test_a_clear_finding_restarts_the_sample_count(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle, rule="samples")
    assert feed(F, F, C, F, F) == []
    assert lifecycle.pairs_needing_clear() == {("m1", "samples")}
    assert kinds(feed(F)) == ["opened"]


def test_opens_after_the_condition_held_for_its_seconds(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle, rule="seconds")
    assert feed(F, F, F) == []  # at 0, 30, 60 s: held 60 s < 90 s
    assert kinds(feed(F)) == ["opened"]  # at 90 s


def test_seconds_are_sample_time_not_sample_count(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle, rule="seconds")
    assert feed(F, step=100) == []  # one poll was slow: the next sample is 100 s later
    assert kinds(feed(F)) == ["opened"]  # two samples, 100 s of firing


def test_both_criteria_must_hold(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle, rule="both")
    assert feed(F, F, F, step=10) == []  # three samples but 20 s
    assert feed(F, step=30) == []  # 30 s
    assert kinds(feed(F)) == ["opened"]  # 60 s, 5 samples


def test_stays_a_single_alert_while_the_condition_lasts(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle)
    feed(*[F] * 200)
    assert kinds(feed.events) == ["opened"]
    assert open_count(conn) == 1
    changes = conn.total_changes
    feed(*[F] * 20)  # same value, same detail: nothing to write
    assert conn.total_changes == changes


def test_a_changed_reading_is_kept_on_the_open_alert(lifecycle: AlertLifecycle) -> None:
    (opened,) = lifecycle.apply([finding(F, T0, rule="instant")], T0)
    lifecycle.apply([finding(F, T0 + 30, rule="instant", value=95.0, detail="chip 95 C >= 85 C")], T0 + 30)
    alert = lifecycle.get(opened.alert_id)
    assert alert is not None and (alert.last_value, alert.detail) == (95.0, "chip 95 C >= 85 C")


# --- clear window, flapping, cooldown ---------------------------------------------------------------------


def test_resolves_only_after_the_clear_window(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    feed = Feed(lifecycle)
    (opened,) = feed(F, F, F)
    assert feed(C, C, C, C) == []  # clear at 0, 30, 60, 90 s: < 120 s
    (resolved,) = feed(C)  # 120 s
    assert (resolved.kind, resolved.alert_id, resolved.actor) == ("resolved", opened.alert_id, "system")
    alert = lifecycle.get(opened.alert_id)
    assert (
        alert is not None and alert.state(feed.now) is AlertState.RESOLVED and alert.resolved_by == "system"
    )
    assert history_kinds(conn, opened.alert_id) == ["opened", "resolved"]
    assert lifecycle.pairs_needing_clear() == set()  # cooling down, nothing debouncing


def test_a_firing_finding_restarts_the_clear_window(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle)
    feed(F, F, F)
    assert feed(C, C, C, C, F, C, C, C, C) == []
    assert kinds(feed(C)) == ["resolved"]


def test_flapping_faster_than_the_windows_is_one_alert(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle)
    for _ in range(50):
        feed(F, F, F, C, C)  # fires long enough to debounce, never clear for 120 s
    assert kinds(feed.events) == ["opened"]
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    assert open_count(conn) == 1


def test_flapping_below_the_debounce_never_opens(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    feed = Feed(lifecycle)
    for _ in range(50):
        feed(F, F, C)
    assert feed.events == []
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


def test_coming_back_within_the_cooldown_reopens_the_same_alert(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle)
    (opened,) = feed(F, F, F)
    lifecycle.ack(opened.alert_id, "alice", feed.now)
    feed(C, C, C, C, C)  # resolved
    assert lifecycle.pairs_needing_clear() == set()
    assert feed(F, F) == []
    assert lifecycle.pairs_needing_clear() == {("m1", "samples")}  # debouncing a reopen
    (reopened,) = feed(F)
    assert (reopened.kind, reopened.alert_id) == ("reopened", opened.alert_id)
    alert = lifecycle.get(opened.alert_id)
    assert alert is not None and alert.reopen_count == 1 and alert.acked_by is None  # a new occurrence
    assert history_kinds(conn, opened.alert_id) == ["opened", "acked", "resolved", "reopened"]
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1


def test_after_the_cooldown_a_new_alert_opens(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    feed = Feed(lifecycle)
    (first,) = feed(F, F, F)
    feed(C, C, C, C, C)
    feed(*[None] * 30)  # 15 min with no finding at all: the cooldown runs on gateway time
    assert lifecycle.pairs_needing_clear() == set()
    assert conn.execute("SELECT count(*) FROM alert_tracks").fetchone()[0] == 0  # back to idle
    (second,) = feed(F, F, F)
    assert second.kind == "opened" and second.alert_id != first.alert_id


def test_without_cooldown_the_pair_goes_idle_on_resolve(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle, rule="seconds")
    (first,) = feed(F, F, F, F)
    assert kinds(feed(C)) == ["resolved"]  # clear window 0
    assert conn.execute("SELECT count(*) FROM alert_tracks").fetchone()[0] == 0
    (second,) = feed(F, F, F, F)
    assert second.kind == "opened" and second.alert_id != first.alert_id


# --- unknown, suspended, missing --------------------------------------------------------------------------


@pytest.mark.parametrize("pause", [U, S, None], ids=["unknown", "suspended", "missing"])
def test_no_data_never_opens(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection, pause: FindingState | None
) -> None:
    feed = Feed(lifecycle)
    feed(*[pause] * 20)
    assert feed.events == [] and conn.execute("SELECT count(*) FROM alert_tracks").fetchone()[0] == 0


@pytest.mark.parametrize("pause", [U, S, None], ids=["unknown", "suspended", "missing"])
def test_no_data_pauses_the_debounce_without_resetting_it(
    lifecycle: AlertLifecycle, pause: FindingState | None
) -> None:
    samples = Feed(lifecycle, miner="a", rule="samples")
    assert samples(F, F, pause, pause, pause) == []
    assert kinds(samples(F)) == ["opened"]  # the count carried over the gap
    seconds = Feed(lifecycle, miner="b", rule="seconds")
    assert seconds(F, pause, pause, F, F) == []
    # 0 s, (paused) 90 s, 120 s: the 90 s spanning the gap are not counted, so only 30 s have held
    assert seconds(F) == []  # 60 s
    assert kinds(seconds(F)) == ["opened"]  # 90 s


@pytest.mark.parametrize("pause", [U, S, None], ids=["unknown", "suspended", "missing"])
def test_no_data_neither_resolves_nor_advances_the_clear_window(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection, pause: FindingState | None
) -> None:
    feed = Feed(lifecycle)
    assert kinds(feed(F, F, F)) == ["opened"]
    assert feed(C, *[pause] * 20, C, C, C) == []
    # clear at 0 and after the gap at 630, 660, 690 s: only 60 s of observed clear
    assert open_count(conn) == 1 and lifecycle.pairs_needing_clear() == {("m1", "samples")}
    assert kinds(feed(C, C)) == ["resolved"]


def test_an_open_alert_stays_open_while_its_miner_is_unknown(lifecycle: AlertLifecycle) -> None:
    feed = Feed(lifecycle)
    feed(F, F, F)
    assert feed(*[U] * 100) == []
    alert = lifecycle.list_alerts(now=feed.now)[0]
    assert alert.open


def test_a_repeated_sample_time_counts_once(lifecycle: AlertLifecycle) -> None:
    for _ in range(5):
        assert lifecycle.apply([finding(F, T0)], T0) == []
    assert kinds(lifecycle.apply([finding(F, T0 + 30)], T0 + 30)) == []
    assert kinds(lifecycle.apply([finding(F, T0 + 60)], T0 + 60)) == ["opened"]


def test_two_findings_for_one_pair_in_one_call_are_judged_in_order(lifecycle: AlertLifecycle) -> None:
    events = lifecycle.apply([finding(F, T0, rule="instant"), finding(C, T0 + 60, rule="instant")], T0 + 60)
    assert kinds(events) == ["opened"]  # clear at one instant is 0 s of clear: the window is 60 s
    events = lifecycle.apply([finding(C, T0 + 120, rule="instant")], T0 + 120)
    assert kinds(events) == ["resolved"]


def test_a_rule_without_policy_gets_the_default(lifecycle: AlertLifecycle) -> None:
    assert lifecycle.apply([finding(F, T0, rule="new_rule")], T0) == []
    assert kinds(lifecycle.apply([finding(F, T0 + 30, rule="new_rule")], T0 + 30)) == ["opened"]


# --- restarts ---------------------------------------------------------------------------------------------


def test_a_restart_mid_debounce_resumes_it(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    assert Feed(AlertLifecycle(conn, POLICIES))(F, F) == []
    conn.close()
    conn = open_db(tmp_path)
    feed = Feed(AlertLifecycle(conn, POLICIES))
    feed.now = T0 + 2 * INTERVAL
    assert kinds(feed(F)) == ["opened"]  # neither forgotten (would need 3 more) nor early
    conn.close()


def test_a_restart_mid_clear_window_and_mid_cooldown_resumes_them(tmp_path: Path) -> None:
    conn = open_db(tmp_path)
    feed = Feed(AlertLifecycle(conn, POLICIES))
    (opened,) = feed(F, F, F, C, C, C)
    conn.close()
    conn = open_db(tmp_path)
    feed.lifecycle = AlertLifecycle(conn, POLICIES)
    assert kinds(feed(C, C)) == ["resolved"]  # 90 s before the restart + 30 after
    conn.close()
    conn = open_db(tmp_path)
    feed.lifecycle = AlertLifecycle(conn, POLICIES)
    events = feed(F, F, F)
    assert [(e.kind, e.alert_id) for e in events] == [("reopened", opened.alert_id)]
    conn.close()


# --- human actions ----------------------------------------------------------------------------------------


def _open(lifecycle: AlertLifecycle, miner: str, now: int = T0) -> int:
    (event,) = lifecycle.apply([finding(F, now, miner=miner, rule="instant")], now)
    return event.alert_id


def _audit(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target) for e in audit.entries(conn)]


def test_ack_is_recorded_in_history_and_audit(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    alert_id = _open(lifecycle, "m1")
    (acked,) = lifecycle.ack(alert_id, "alice", T0 + 10, note="on my way")
    assert (acked.kind, acked.actor, acked.ts) == ("acked", "alice", T0 + 10)
    alert = lifecycle.get(alert_id)
    assert alert is not None and (alert.acked_by, alert.acked_at, alert.state(T0 + 10)) == (
        "alice",
        T0 + 10,
        "acked",
    )
    assert lifecycle.ack(alert_id, "bob", T0 + 20) == []  # already acked: nothing happens, nothing recorded
    (entry,) = lifecycle.history(alert_id)[1:]
    assert (entry.kind, entry.actor, entry.data) == ("acked", "alice", {"note": "on my way"})
    assert _audit(conn) == [("alice", "alert.acked", f"alert:{alert_id}")]
    assert audit.entries(conn)[0].details == {
        "alert_id": alert_id,
        "miner_id": "m1",
        "rule_id": "instant",
        "note": "on my way",
    }
    assert audit.verify(conn) == (True, None)


def test_batch_ack_is_all_or_nothing(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    ids = [_open(lifecycle, f"m{i}") for i in range(3)]
    with pytest.raises(AlertNotFound):
        lifecycle.ack_many([*ids, 999], "alice", T0 + 10)
    lifecycle.resolve(ids[2], "bob", T0 + 10)
    with pytest.raises(AlertConflict):
        lifecycle.ack_many(ids, "alice", T0 + 20)
    assert all(lifecycle.get(i).acked_by is None for i in ids)  # type: ignore[union-attr]
    events = lifecycle.ack_many([ids[0], ids[1], ids[0]], "alice", T0 + 30)
    assert sorted((e.alert_id, e.kind) for e in events) == [(ids[0], "acked"), (ids[1], "acked")]
    assert [a for _, a, _ in _audit(conn)] == ["alert.resolved", "alert.acked", "alert.acked"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lc, i: lc.ack(i, "", T0), "actor is required"),
        (lambda lc, i: lc.ack(i, "system", T0), "actor is required"),
        (lambda lc, i: lc.ack_many([], "alice", T0), "no alert ids"),
        (lambda lc, i: lc.suppress(i, "alice", T0 + 60, "  ", T0), "needs a reason"),
        (lambda lc, i: lc.suppress(i, "alice", T0, "maintenance", T0), "in the future"),
        (lambda lc, i: lc.resolve(i, "ali\nce", T0), "printable"),
    ],
)
def test_bad_human_input_is_refused_and_changes_nothing(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection, call: object, message: str
) -> None:
    alert_id = _open(lifecycle, "m1")
    with pytest.raises(AlertError, match=message):
        call(lifecycle, alert_id)  # type: ignore[operator]
    assert history_kinds(conn, alert_id) == ["opened"] and audit.entries(conn) == []


def test_suppression_silences_events_and_ends_by_itself(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle, rule="instant")
    (opened,) = feed(F)
    until = feed.now + 90
    (suppressed,) = lifecycle.suppress(opened.alert_id, "alice", until, "firmware update", feed.now)
    assert suppressed.kind == "suppressed" and lifecycle.is_suppressed(opened.alert_id, feed.now)
    assert lifecycle.suppressed_alert_ids(feed.now) == {opened.alert_id}
    (resolved,) = feed(C, C, C)  # the lifecycle keeps working underneath...
    assert resolved.kind == "resolved" and resolved.suppressed  # ...but marks the event for the notifier
    assert not lifecycle.is_suppressed(opened.alert_id, until)
    (ended,) = feed(None)  # first cycle at/after `until`
    assert (ended.kind, ended.actor, ended.suppressed) == ("unsuppressed", "system", False)
    assert history_kinds(conn, opened.alert_id) == ["opened", "suppressed", "resolved", "unsuppressed"]
    assert _audit(conn) == [("alice", "alert.suppressed", f"alert:{opened.alert_id}")]  # people only


def test_unsuppress_by_hand(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    alert_id = _open(lifecycle, "m1")
    lifecycle.suppress(alert_id, "alice", T0 + 3600, "known issue", T0)
    (lifted,) = lifecycle.unsuppress(alert_id, "bob", T0 + 60)
    assert lifted.actor == "bob" and not lifecycle.is_suppressed(alert_id, T0 + 60)
    assert lifecycle.unsuppress(alert_id, "bob", T0 + 70) == []
    assert [a for _, a, _ in _audit(conn)] == ["alert.suppressed", "alert.unsuppressed"]


def test_manual_resolve_then_the_condition_persists(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    feed = Feed(lifecycle)
    (opened,) = feed(F, F, F)
    (resolved,) = lifecycle.resolve(opened.alert_id, "bob", feed.now, note="reseated the board")
    assert (resolved.kind, resolved.actor) == ("resolved", "bob")
    alert = lifecycle.get(opened.alert_id)
    assert alert is not None and alert.resolved_by == "bob" and open_count(conn) == 0
    with pytest.raises(AlertConflict):
        lifecycle.resolve(opened.alert_id, "bob", feed.now)
    assert kinds(feed(F, F, F)) == ["reopened"]  # still there: the same alert comes back, debounced
    assert _audit(conn) == [("bob", "alert.resolved", f"alert:{opened.alert_id}")]


def test_unknown_alert(lifecycle: AlertLifecycle) -> None:
    calls: list[Callable[[], object]] = [
        lambda: lifecycle.ack(42, "alice", T0),
        lambda: lifecycle.suppress(42, "alice", T0 + 60, "x", T0),
        lambda: lifecycle.unsuppress(42, "alice", T0),
        lambda: lifecycle.resolve(42, "alice", T0),
    ]
    for call in calls:
        with pytest.raises(AlertNotFound, match="no alert 42"):
            call()
    assert lifecycle.get(42) is None


def test_list_filters(lifecycle: AlertLifecycle) -> None:
    a = _open(lifecycle, "m1")
    b = _open(lifecycle, "m2")
    (c,) = lifecycle.apply(
        [finding(F, T0, miner="m3", rule="seconds"), finding(F, T0 + 90, miner="m3", rule="seconds")], T0 + 90
    )
    lifecycle.ack(a, "alice", T0)
    lifecycle.suppress(b, "alice", T0 + 600, "maintenance", T0)

    def ids(**filters: Any) -> list[int]:
        return [x.id for x in lifecycle.list_alerts(now=T0 + 100, **filters)]

    assert ids() == [a, b, c.alert_id]  # worst first (P0, P0, P2), then oldest
    assert ids(state=StateFilter.ACKED) == [a]
    assert ids(state=StateFilter.SUPPRESSED) == [b]
    assert ids(state=StateFilter.UNACKED) == [c.alert_id]
    assert ids(severities={Severity.P2}) == [c.alert_id]
    assert ids(miner_id="m2") == [b]
    assert ids(rule_id="seconds") == [c.alert_id]
    lifecycle.resolve(a, "bob", T0 + 100)
    assert ids(state=StateFilter.RESOLVED) == [a]
    assert ids(state=StateFilter.ALL) == [c.alert_id, b, a]  # newest first


# --- the notifier's hook ----------------------------------------------------------------------------------


def test_enqueue_runs_inside_the_transaction_and_a_failure_undoes_the_transition(
    conn: sqlite3.Connection,
) -> None:
    seen: list[tuple[bool, list[str]]] = []
    broken = True

    def enqueue(db: sqlite3.Connection, events: object, now: int) -> None:
        seen.append((db.in_transaction, [e.kind for e in events]))  # type: ignore[attr-defined]
        if broken:
            raise RuntimeError("outbox full")

    lifecycle = AlertLifecycle(conn, POLICIES, enqueue=enqueue)
    with pytest.raises(RuntimeError):
        lifecycle.apply([finding(F, T0, rule="instant")], T0)
    assert seen == [(True, ["opened"])]
    assert conn.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert lifecycle.pairs_needing_clear() == set()  # memory followed the rollback
    broken = False
    assert kinds(lifecycle.apply([finding(F, T0 + 30, rule="instant")], T0 + 30)) == ["opened"]
    alert_id = lifecycle.list_alerts(now=T0 + 30)[0].id
    lifecycle.ack(alert_id, "alice", T0 + 40)
    assert seen[-1] == (True, ["acked"])


# --- invariants -------------------------------------------------------------------------------------------

PAIRS = [("m1", "samples"), ("m1", "both"), ("m2", "samples"), ("m2", "instant")]
step = st.one_of(
    st.tuples(st.just("cycle"), st.lists(st.sampled_from([F, C, U, S, None]), min_size=4, max_size=4),
              st.integers(1, 400)),
    st.tuples(
        st.sampled_from(["ack", "suppress", "resolve", "unsuppress"]), st.integers(0, 3), st.integers(1, 900)
    ),
    st.tuples(st.just("restart"), st.just(0), st.just(0)),
)  # fmt: skip


def check_invariants(conn: sqlite3.Connection, lifecycle: AlertLifecycle) -> None:
    doubles = conn.execute(
        "SELECT miner_id, rule_id FROM alerts WHERE state = 'open' GROUP BY 1, 2 HAVING count(*) > 1"
    ).fetchall()
    assert doubles == []
    tracks = load_tracks(conn)
    for alert in lifecycle.list_alerts(now=0, state=StateFilter.ALL, limit=10_000):
        history = history_kinds(conn, alert.id)
        assert history[0] == "opened"
        transitions = [k for k in history if k in ("opened", "reopened", "resolved")]
        assert (transitions[-1] != "resolved") == alert.open
        assert history.count("reopened") == alert.reopen_count
        if alert.open:
            track = tracks[(alert.miner_id, alert.rule_id)]
            assert track.phase in (Phase.FIRING, Phase.CLEARING) and track.alert_id == alert.id
    assert lifecycle._tracker.tracks == tracks  # the cache is exactly what is committed


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, max_size=60))
def test_any_sequence_keeps_one_open_alert_per_pair_with_its_history(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any, int]]
) -> None:
    path = tmp_path_factory.mktemp("prop")
    conn = open_db(path)
    lifecycle, now = AlertLifecycle(conn, POLICIES), T0
    try:
        for kind, arg, gap in steps:
            now += gap
            if kind == "cycle":
                found = [
                    finding(s, now, miner=m, rule=r)
                    for (m, r), s in zip(PAIRS, arg, strict=True)
                    if s is not None
                ]
                lifecycle.apply(found, now)
            elif kind == "restart":
                conn.close()
                conn = open_db(path)
                lifecycle = AlertLifecycle(conn, POLICIES)
            else:
                live = lifecycle.list_alerts(now=now, state=StateFilter.ALL)
                if not live:
                    continue
                alert = live[arg % len(live)]
                try:
                    if kind == "ack":
                        lifecycle.ack(alert.id, "alice", now)
                    elif kind == "suppress":
                        lifecycle.suppress(alert.id, "alice", now + gap, "maintenance", now)
                    elif kind == "unsuppress":
                        lifecycle.unsuppress(alert.id, "alice", now)
                    else:
                        lifecycle.resolve(alert.id, "alice", now)
                except AlertConflict:
                    assert not alert.open
            check_invariants(conn, lifecycle)
        assert audit.verify(conn) == (True, None)
    finally:
        conn.close()


# --- scale ------------------------------------------------------------------------------------------------


def test_ten_thousand_pairs_per_cycle_cost_only_what_changed(
    lifecycle: AlertLifecycle, conn: sqlite3.Connection
) -> None:
    """No timing assertion (ARCHITECTURE §10): the work is counted in rows written."""
    miners = [f"m{i:05d}" for i in range(10_000)]

    def cycle(now: int, hot: set[str], value: float = 91.0) -> list[AlertEvent]:
        found = [finding(F if m in hot else C, now, miner=m, rule="instant", value=value) for m in miners]
        return lifecycle.apply(found, now)

    everyone = set(miners)
    assert len(cycle(T0, everyone)) == 10_000
    before = conn.total_changes
    assert cycle(T0 + 30, everyone) == []
    assert conn.total_changes == before  # 10,000 open alerts, nothing changed: nothing written
    before = conn.total_changes
    cycle(T0 + 60, everyone - set(miners[:10]))  # ten clear: ten tracks move to clearing
    assert conn.total_changes - before == 10
    assert len(lifecycle.pairs_needing_clear()) == 10_000


def test_a_healthy_fleet_costs_no_write(lifecycle: AlertLifecycle, conn: sqlite3.Connection) -> None:
    before = conn.total_changes
    lifecycle.apply([finding(C, T0, miner=f"m{i:05d}") for i in range(10_000)], T0)
    lifecycle.apply([finding(U, T0 + 30, miner=f"m{i:05d}") for i in range(10_000)], T0 + 30)
    assert conn.total_changes == before
    assert lifecycle.pairs_needing_clear() == set()


def test_policy_lookup_by_miner_for_per_model_timing(conn: sqlite3.Connection) -> None:
    slow = Policy(severity=Severity.P1, debounce_samples=4, clear_window_s=0, cooldown_s=0)

    def lookup(miner_id: str, rule_id: str) -> Policy:
        if rule_id != "samples":
            raise KeyError(rule_id)
        return slow if miner_id == "old-s9" else Policy(severity=Severity.P1, debounce_samples=1)

    lifecycle = AlertLifecycle(conn, lookup)
    assert kinds(Feed(lifecycle, miner="new-s21")(F)) == ["opened"]
    assert kinds(Feed(lifecycle, miner="old-s9")(F, F, F, F)) == ["opened"]
    assert lifecycle.policy("old-s9", "unknown_rule") is DEFAULT_POLICY  # a KeyError: the default
