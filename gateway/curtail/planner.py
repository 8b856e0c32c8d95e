"""The planner's model (pure): a `PlanRequest` becomes a sparse linear model; solver values become counts.

Decision variables: x[c][t], the integer count of class c running in period t (columns 0..C*H-1, class
major). Objective: maximise sum(margin[c][t] x[c][t]) - sum(window charge x peak load in the window) -
demand charge x (peak - peak so far). Constraints: site/window caps and floors, contract caps per
customer, ramp on site load, minimum on/off in count form (x[c][t] - x[c][t-1] = up - down; x >= starts
in the last U periods; count - x >= stops in the last D periods), customer minimum uptime over the horizon.

Why our own sparse form rather than PuLP objects: building and serialising PuLP expressions cost 10x the
solve on a 4-class day, and the rolling backtest solves thousands of them. The child process hands the
arrays to HiGHS directly, or rebuilds a PuLP model for CBC. Nothing here runs a solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from gateway.curtail.planner_model import PlanRequest, margins_usd

__all__ = ["LinearModel", "build_model", "counts_from_values", "objective_usd"]

INF = float("inf")


@dataclass(slots=True, kw_only=True)
class LinearModel:
    """max obj.x subject to row_lower <= A x <= row_upper, col bounds; A in row-wise sparse form.

    Mutable only while `build_model` fills it; treat as a value afterwards."""

    obj: list[float] = field(default_factory=list)
    col_lower: list[float] = field(default_factory=list)
    col_upper: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=lambda: [0])
    index: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    n_x: int = 0

    def col(self, obj: float = 0.0, lower: float = 0.0, upper: float = INF, *, integer: bool = False) -> int:
        self.obj.append(obj)
        self.col_lower.append(lower)
        self.col_upper.append(upper)
        self.integer.append(integer)
        return len(self.obj) - 1

    def row(self, terms: dict[int, float], lower: float = -INF, upper: float = INF) -> None:
        for j, a in terms.items():
            if a:
                self.index.append(j)
                self.value.append(a)
        self.starts.append(len(self.index))
        self.row_lower.append(lower)
        self.row_upper.append(upper)

    def to_json(self) -> dict[str, object]:
        def finite(values: list[float]) -> list[float | None]:
            return [v if abs(v) != INF else None for v in values]

        return {
            "obj": self.obj,
            "col_lower": finite(self.col_lower),
            "col_upper": finite(self.col_upper),
            "integer": self.integer,
            "row_lower": finite(self.row_lower),
            "row_upper": finite(self.row_upper),
            "starts": self.starts,
            "index": self.index,
            "value": self.value,
            "n_x": self.n_x,
        }


def _load(req: PlanRequest, t: int) -> dict[int, float]:
    h = req.horizon
    return {ci * h + t: c.kw_per_miner for ci, c in enumerate(req.classes)}


def build_model(req: PlanRequest) -> LinearModel:
    """The integer problem (x integer in [0, count]); the solver process relaxes it for the LP stage."""
    m = LinearModel()
    h, classes = req.horizon, req.classes
    margins = margins_usd(req)
    for ci, c in enumerate(classes):
        for t in range(h):
            m.col(float(margins[ci][t]), 0.0, float(c.count), integer=True)
    m.n_x = len(classes) * h

    for t in range(h):
        cap, floor = req.cap_kw(t), req.floor_kw(t)
        if cap is not None or floor > 0:
            m.row(_load(req, t), floor if floor > 0 else -INF, cap if cap is not None else INF)

    for w in req.windows:
        inside = [t for t in range(h) if w.covers(req.period_start(t), req.period_s)]
        if not inside or w.charge_per_kw <= 0:
            continue
        peak = m.col(-float(w.charge_per_kw))
        for t in inside:  # peak - load >= 0
            m.row({**{j: -a for j, a in _load(req, t).items()}, peak: 1.0}, 0.0)

    if req.demand_charge_per_kw > 0:
        excess = m.col(-float(req.demand_charge_per_kw))
        for t in range(h):  # excess - load >= -peak_so_far
            m.row({**{j: -a for j, a in _load(req, t).items()}, excess: 1.0}, -req.demand_peak_kw_so_far)

    index = {c.key: ci for ci, c in enumerate(classes)}
    for cust in req.customers:
        members = [index[key] for key in cust.class_keys]
        if cust.max_kw is not None:
            for t in range(h):
                m.row({ci * h + t: classes[ci].kw_per_miner for ci in members}, upper=cust.max_kw)
        need = float(cust.min_uptime) * sum(classes[ci].count for ci in members) * h
        if need > 0:
            m.row({ci * h + t: 1.0 for ci in members for t in range(h)}, lower=need)

    ramp = req.ramp_kw_per_period
    if ramp is not None:
        initial = req.initial_kw()
        m.row(_load(req, 0), initial - ramp, initial + ramp)
        for t in range(1, h):
            terms = _load(req, t)
            for j, a in _load(req, t - 1).items():
                terms[j] = terms.get(j, 0.0) - a
            m.row(terms, -ramp, ramp)

    up_n, down_n = req.min_on_periods, req.min_off_periods
    if up_n > 1 or down_n > 1:
        for ci, c in enumerate(classes):
            ups = [m.col() for _ in range(h)]
            downs = [m.col() for _ in range(h)]
            before = req.initial_on.get(c.key, 0)
            for t in range(h):
                x = ci * h + t
                # x_t - x_{t-1} - up_t + down_t = 0 (x_{-1} is the constant initial count)
                terms = {x: 1.0, ups[t]: -1.0, downs[t]: 1.0}
                if t:
                    terms[x - 1] = -1.0
                m.row(terms, float(before) if t == 0 else 0.0, float(before) if t == 0 else 0.0)
                if up_n > 1:
                    recent = sum(req.recent("starts", c.key, b) for b in range(1, up_n - t))
                    terms = {x: 1.0} | dict.fromkeys(ups[max(0, t - up_n + 1) : t + 1], -1.0)
                    m.row(terms, lower=float(recent))
                if down_n > 1:
                    recent = sum(req.recent("stops", c.key, b) for b in range(1, down_n - t))
                    terms = {x: 1.0} | dict.fromkeys(downs[max(0, t - down_n + 1) : t + 1], 1.0)
                    m.row(terms, upper=float(c.count - recent))
    return m


def counts_from_values(
    req: PlanRequest, x: list[float | None], *, tol: float = 1e-6
) -> list[list[int]] | str:
    """Integer counts on[c][t] from the solver's x columns, or why they are not acceptable.

    A time-limited, non-integral or partial solution can arrive labelled as a solution, so every x must be
    present, finite, within `tol` of an integer and within [0, count]."""
    h = req.horizon
    if len(x) != len(req.classes) * h:
        return f"{len(x)} values for {len(req.classes) * h} counts"
    on: list[list[int]] = []
    for ci, c in enumerate(req.classes):
        row: list[int] = []
        for t in range(h):
            v = x[ci * h + t]
            if v is None or v != v or abs(v) == INF:
                return f"no value for class {c.key} period {t}"
            r = round(v)
            if abs(v - r) > tol:
                return f"non-integral count {v} for class {c.key} period {t}"
            if not 0 <= r <= c.count:
                return f"count {r} outside 0..{c.count} for class {c.key} period {t}"
            row.append(int(r))
        on.append(row)
    return on


def objective_usd(req: PlanRequest, on: list[list[int]]) -> Decimal:
    """The plan's net value in USD over the horizon, computed exactly from its integer counts."""
    margins = margins_usd(req)
    total = sum(
        (margins[ci][t] * on[ci][t] for ci in range(len(req.classes)) for t in range(req.horizon)),
        Decimal(0),
    )
    kws = [Decimal(str(c.kw_per_miner)) for c in req.classes]
    loads = [sum(kws[ci] * on[ci][t] for ci in range(len(req.classes))) for t in range(req.horizon)]
    for w in req.windows:
        inside = [loads[t] for t in range(req.horizon) if w.covers(req.period_start(t), req.period_s)]
        if inside and w.charge_per_kw > 0:
            total -= w.charge_per_kw * max(inside)
    if req.demand_charge_per_kw > 0 and loads:
        excess = max(Decimal(0), max(loads) - Decimal(str(req.demand_peak_kw_so_far)))
        total -= req.demand_charge_per_kw * excess
    return total
