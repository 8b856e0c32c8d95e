"""Which miners the executor picks: exact cases and hypothesis properties of `executor_select.select`."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.curtail.executor_select import (
    MinerView,
    SelectionSettings,
    Skip,
    dwell_skip,
    on_counts,
    select,
    telemetry_skip,
)

NOW = 1_700_000_000
S19 = "s19jpro|normal"
RULES = SelectionSettings(min_on_s=900, min_off_s=900)


def miner(
    miner_id: str,
    *,
    on: bool = True,
    power_w: float | None = 3050.0,
    hashrate_ths: float | None = 100.0,
    temp_c: float | None = 70.0,
    last_change_ts: int | None = None,
    curtailed_s: int = 0,
    cycles: int = 0,
    class_key: str | None = S19,
    blocked: Skip | None = None,
) -> MinerView:
    if not on:
        power_w = 15.0 if power_w == 3050.0 else power_w
        hashrate_ths = 0.0 if hashrate_ths == 100.0 else hashrate_ths
    return MinerView(
        miner_id=miner_id,
        class_key=class_key,
        on=on,
        power_w=power_w,
        hashrate_ths=hashrate_ths,
        nominal_w=3050.0,
        nominal_ths=100.0,
        sleep_w=15.0,
        temp_c=temp_c,
        last_change_ts=last_change_ts,
        curtailed_s=curtailed_s,
        cycles=cycles,
        blocked=blocked,
    )


def test_least_efficient_first_then_hottest() -> None:
    fleet = [
        miner("a", power_w=3050.0),  # 30.5 J/TH
        miner("b", power_w=3400.0),  # 34 J/TH: worst
        miner("c", power_w=3050.0, temp_c=88.0),  # same band as a, hotter
        miner("d", power_w=3000.0),  # 30 J/TH: best
    ]
    result = select(fleet, {S19: 2}, NOW, RULES)
    assert result.curtail == ("b", "c")
    assert result.resume == () and result.skipped == {} and result.shortfall_by_class == {}


def test_equals_rotate_by_wear() -> None:
    """Identical machines: the one that has rested least is curtailed, then the fewest cycles."""
    fleet = [
        miner("a", curtailed_s=7200, cycles=2),
        miner("b", curtailed_s=0, cycles=5),
        miner("c", curtailed_s=0, cycles=1),
        miner("d", curtailed_s=3600, cycles=0),
    ]
    assert select(fleet, {S19: 2}, NOW, RULES).curtail == ("c", "b")


def test_noise_does_not_beat_wear() -> None:
    """0.3 J/TH of sensor noise is inside one band: wear decides."""
    fleet = [miner("a", power_w=3080.0, curtailed_s=9000), miner("b", power_w=3051.0, curtailed_s=0)]
    assert select(fleet, {S19: 1}, NOW, RULES).curtail == ("b",)


def test_resume_most_efficient_and_most_rested_first() -> None:
    fleet = [
        miner("a", on=False, curtailed_s=100),
        miner("b", on=False, curtailed_s=5000),
        miner("c", on=False, curtailed_s=900),
        miner("d"),
    ]
    result = select(fleet, {S19: 3}, NOW, RULES)
    assert result.resume == ("b", "c") and result.curtail == ()


def test_min_on_and_off_times_are_respected_and_counted() -> None:
    fleet = [
        miner("a", last_change_ts=NOW - 100),  # on for 100 s: inside min on
        miner("b", last_change_ts=NOW - 900),  # exactly at the limit: allowed
        miner("c", on=False, last_change_ts=NOW - 10),  # asleep 10 s: irrelevant for curtailing
    ]
    result = select(fleet, {S19: 0}, NOW, RULES)
    assert result.curtail == ("b",)
    assert result.skipped == {"a": Skip.MIN_ON_TIME}
    assert result.shortfall_by_class == {S19: 1}
    woken = select(fleet, {S19: 3}, NOW, RULES)
    assert woken.resume == () and woken.skipped == {"c": Skip.MIN_OFF_TIME}
    assert woken.shortfall_by_class == {S19: -1}


def test_untrustworthy_telemetry_is_skipped_by_reason() -> None:
    fleet = [
        miner("phantom", power_w=2900.0, hashrate_ths=0.0),
        miner("deadpower", power_w=0.0, hashrate_ths=99.0),
        miner("silent", power_w=None),
        miner("held", blocked=Skip.OVERRIDE),
        miner("ok"),
    ]
    result = select(fleet, {S19: 0}, NOW, RULES)
    assert result.curtail == ("ok",)
    assert result.skipped == {
        "phantom": Skip.PHANTOM_LOAD,
        "deadpower": Skip.DEAD_POWER_READING,
        "silent": Skip.NO_TELEMETRY,
        "held": Skip.OVERRIDE,
    }
    assert result.skip_counts == {
        Skip.PHANTOM_LOAD: 1,
        Skip.DEAD_POWER_READING: 1,
        Skip.NO_TELEMETRY: 1,
        Skip.OVERRIDE: 1,
    }


def test_classes_without_a_target_are_left_alone_and_met_targets_do_nothing() -> None:
    fleet = [miner("a"), miner("b", class_key="other|normal"), miner("c", class_key=None)]
    assert select(fleet, {S19: 1}, NOW, RULES).curtail == ()
    assert select(fleet, {}, NOW, RULES).curtail == ()


def test_a_negative_target_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        select([miner("a")], {S19: -1}, NOW, RULES)


def test_helpers() -> None:
    assert dwell_skip(miner("a"), RULES, NOW) is None
    assert telemetry_skip(miner("a", on=False), RULES) is None
    assert on_counts([miner("a"), miner("b", on=False), miner("c", class_key=None)]) == {S19: 1}
    with pytest.raises(ValueError):
        SelectionSettings(min_on_s=-1)


# --- properties --------------------------------------------------------------------------------------

CLASSES = ("x|normal", "y|normal", "z|low")


@st.composite
def fleets(draw: st.DrawFn) -> list[MinerView]:
    count = draw(st.integers(0, 30))
    views = []
    for i in range(count):
        on = draw(st.booleans())
        views.append(
            miner(
                f"m{i:02d}",
                on=on,
                class_key=draw(st.sampled_from(CLASSES)),
                power_w=draw(st.one_of(st.none(), st.floats(0, 4000))),
                hashrate_ths=draw(st.one_of(st.none(), st.floats(0, 120))),
                temp_c=draw(st.one_of(st.none(), st.floats(20, 100))),
                last_change_ts=draw(st.one_of(st.none(), st.integers(NOW - 5000, NOW))),
                curtailed_s=draw(st.integers(0, 10**6)),
                cycles=draw(st.integers(0, 1000)),
                blocked=draw(st.one_of(st.none(), st.sampled_from(list(Skip)))),
            )
        )
    return views


@settings(max_examples=100, deadline=None)
@given(fleet=fleets(), targets=st.dictionaries(st.sampled_from(CLASSES), st.integers(0, 30)))
def test_selection_properties(fleet: list[MinerView], targets: dict[str, int]) -> None:
    result = select(fleet, targets, NOW, RULES)
    by_id = {v.miner_id: v for v in fleet}
    chosen = set(result.curtail) | set(result.resume)
    assert len(chosen) == len(result.curtail) + len(result.resume)  # no miner twice
    assert not chosen & set(result.skipped)  # a skipped miner is never picked
    for miner_id in chosen:
        view = by_id[miner_id]
        assert dwell_skip(view, RULES, NOW) is None  # never inside its min on/off time
        assert view.blocked is None
        assert view.class_key in targets
    before = on_counts(fleet)
    after_views = [dataclasses.replace(v, on=not v.on) if v.miner_id in chosen else v for v in fleet]
    after = on_counts(after_views)
    for key, target in targets.items():
        was, now = before.get(key, 0), after.get(key, 0)
        # never past the target: curtailing stops at it, resuming stops at it
        assert (was >= target and target <= now <= was) or (was <= target and was <= now <= target)
        # what is missing is exactly the shortfall, and it is explained by counted skips
        short = result.shortfall_by_class.get(key, 0)
        assert now - target == short
        # the shortfall is exactly what the counted skips (or an empty class) leave missing
        direction = [v for v in fleet if v.class_key == key and v.on == (was > target)]
        skipped_here = sum(1 for v in direction if v.miner_id in result.skipped)
        assert abs(short) == max(0, abs(was - target) - (len(direction) - skipped_here))
    # every skip is a miner of a targeted class, in the direction that class needed
    for miner_id in result.skipped:
        view = by_id[miner_id]
        assert view.class_key in targets
