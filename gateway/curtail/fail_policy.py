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
full-load state into a known peak window is how a lost signal would run the site through it.
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
) -> Decision:
    """The response to the failed inputs at `now`.

    `current_on` is what is on now (per class), `full_on` every miner of each class, `curtailed_on` the
    configured curtailed state (default: every class at 0)."""
    if not failed:
        return Decision(response=None, reason="all inputs healthy", on_by_class=None)
    chosen = max((policy.response(i) for i in failed), key=_RANK.__getitem__)
    names = ", ".join(sorted(i.value for i in failed))
    reason = f"{names} failed: {chosen.value}"
    if chosen is not Response.CURTAIL and any(a <= now < b for a, b in policy.must_curtail_windows):
        chosen = Response.CURTAIL
        reason = f"{names} failed inside a known peak window: curtail"
    if chosen is Response.CURTAIL:
        targets = dict(curtailed_on) if curtailed_on is not None else dict.fromkeys(full_on, 0)
        # never "curtail" upwards: a class already below the curtailed level stays where it is
        targets = {k: min(targets.get(k, 0), current_on.get(k, 0)) for k in full_on}
        return Decision(response=chosen, reason=reason, on_by_class=targets)
    if chosen is Response.RESUME:
        return Decision(response=chosen, reason=reason, on_by_class=dict(full_on))
    return Decision(response=chosen, reason=reason, on_by_class={k: current_on.get(k, 0) for k in full_on})
