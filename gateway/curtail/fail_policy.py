"""What the executor does when one of its inputs fails (pure): hold, curtail or resume.

Three inputs can fail independently: the price feed goes stale, the planner fails (no plan, or only a
plan that ran out), the demand-response / 4CP signal is lost. Each has its own configured response:

- `hold`: keep every miner as it is now (no new actions; drift is still corrected towards the held
  state). Right for a stale price feed: the last plan was made on real prices and the site is in a
  known, safe state.
- `curtail`: go to the configured curtailed targets (by default every class at 0 on).
- `resume`: go back to full load (every miner of every class on).

Defaults, and why: price feed stale -> hold; planner failed -> hold; DR signal lost -> curtail. A lost
DR signal is exactly the situation in which the site cannot know it is inside a 4CP interval, and one
4CP interval at full load sets a year's transmission charge, so the site sheds load rather than guess.
When several inputs fail at once the most protective response wins (curtail > hold > resume), so a
configured `resume` on one input can never override another input's `curtail`.

Separately, `must_curtail_windows` (known 4CP / DR windows from the site's settings) force `curtail`
while any input has failed inside such a window, whatever the per-input response says: holding a
full-load state into a known peak window is how a lost signal would run the site through it. Shedding
starts ahead of the window, at the ramp rate: with `ramp_kw_per_period` set, the load allowed now is
what the ramp can still take down to zero before the window, less `lead_s` of margin (a tick can start
late); without a ramp limit, everything is shed `lead_s` before the window. So a failure just before a
window never holds full load until its first second and then drops the whole site at once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Response(enum.StrEnum):
    HOLD = "hold"
    CURTAIL = "curtail"
    RESUME = "resume"


class Input(enum.StrEnum):
    PRICE_FEED = "price_feed"
    PLANNER = "planner"
    DR_SIGNAL = "dr_signal"


_RANK = {Response.RESUME: 0, Response.HOLD: 1, Response.CURTAIL: 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class FailPolicy:
    price_feed: Response = Response.HOLD
    planner: Response = Response.HOLD
    dr_signal: Response = Response.CURTAIL
    # [start, end) UTC epoch seconds of known peak windows (4CP candidates, scheduled DR events).
    must_curtail_windows: tuple[tuple[int, int], ...] = ()
    # shedding ahead of a must-curtail window: the site's ramp limit (None: shed in one step), the
    # period it is counted per, and the margin by which the site must already be at zero
    ramp_kw_per_period: float | None = None
    period_s: int = 900
    lead_s: int = 900

    def response(self, failed: Input) -> Response:
        return Response(getattr(self, failed.value))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> FailPolicy:
        """From a settings table like `{"price_feed": "hold", "dr_signal": "curtail"}`; an unknown key
        or value is a one-line error naming it."""
        values: dict[str, Response] = {}
        for key, value in raw.items():
            if key not in {i.value for i in Input}:
                raise ValueError(f"fail_policy.{key}: unknown input (known: price_feed, planner, dr_signal)")
            try:
                values[key] = Response(str(value))
            except ValueError:
                raise ValueError(f"fail_policy.{key}: {value!r} is not hold, curtail or resume") from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """`response` None: every input healthy, follow the plan."""

    response: Response | None
    reason: str
    on_by_class: Mapping[str, int] | None  # the targets to apply; None with HOLD: keep current state


def decide(
    failed: Sequence[Input],
    policy: FailPolicy,
    now: int,
    *,
    current_on: Mapping[str, int],
    full_on: Mapping[str, int],
    curtailed_on: Mapping[str, int] | None = None,
    kw_by_class: Mapping[str, float] | None = None,
) -> Decision:
    """The response to the failed inputs at `now`.

    `current_on` is what is on now (per class), `full_on` every miner of each class, `curtailed_on` the
    configured curtailed state (default: every class at 0), `kw_by_class` each class's kW per miner (for
    the ramp ahead of a must-curtail window; without it the lead is one step of `lead_s`)."""
    if not failed:
        return Decision(response=None, reason="all inputs healthy", on_by_class=None)
    chosen = max((policy.response(i) for i in failed), key=_RANK.__getitem__)
    names = ", ".join(sorted(i.value for i in failed))
    reason = f"{names} failed: {chosen.value}"
    if chosen is not Response.CURTAIL and any(a <= now < b for a, b in policy.must_curtail_windows):
        chosen = Response.CURTAIL
        reason = f"{names} failed inside a known peak window: curtail"
    elif chosen is not Response.CURTAIL:
        ahead = _ramp_ahead(policy, now, current_on, full_on, kw_by_class)
        if ahead is not None:
            targets, start = ahead
            base = {k: current_on.get(k, 0) for k in full_on} if chosen is Response.HOLD else dict(full_on)
            reason = f"{names} failed {start - now} s before a known peak window: shedding ahead of it"
            return Decision(
                response=Response.CURTAIL,
                reason=reason,
                on_by_class={k: min(base.get(k, 0), targets.get(k, 0)) for k in full_on},
            )
    if chosen is Response.CURTAIL:
        targets = dict(curtailed_on) if curtailed_on is not None else dict.fromkeys(full_on, 0)
        # never "curtail" upwards: a class already below the curtailed level stays where it is
        targets = {k: min(targets.get(k, 0), current_on.get(k, 0)) for k in full_on}
        return Decision(response=chosen, reason=reason, on_by_class=targets)
    if chosen is Response.RESUME:
        return Decision(response=chosen, reason=reason, on_by_class=dict(full_on))
    return Decision(response=chosen, reason=reason, on_by_class={k: current_on.get(k, 0) for k in full_on})


def _ramp_ahead(
    policy: FailPolicy,
    now: int,
    current_on: Mapping[str, int],
    full_on: Mapping[str, int],
    kw_by_class: Mapping[str, float] | None,
) -> tuple[dict[str, int], int] | None:
    """Per-class caps that let the ramp reach zero `lead_s` before the next must-curtail window, and that
    window's start; None when no window is near enough to need shedding yet.

    Load allowed now = ramp x (whole periods left before the window, less the lead). Over the cap,
    every class is cut in proportion (rounded down: shed a little more, never less)."""
    upcoming = [a for a, _ in policy.must_curtail_windows if a > now]
    if not upcoming:
        return None
    start = min(upcoming)
    left = -(-(start - now) // policy.period_s) - -(-policy.lead_s // policy.period_s)  # ceil - ceil
    ramp = policy.ramp_kw_per_period
    kw = kw_by_class or {}
    load_kw = sum(current_on.get(k, 0) * kw.get(k, 0.0) for k in full_on)
    if left <= 0:
        return dict.fromkeys(full_on, 0), start
    if ramp is None or not kw:
        return None  # one step is allowed: nothing to shed before the lead
    cap_kw = ramp * left
    if load_kw <= cap_kw:
        return None
    share = cap_kw / load_kw
    return {k: int(current_on.get(k, 0) * share) for k in full_on}, start
