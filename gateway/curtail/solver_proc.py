"""Run the MILP solver in a child process that can be killed hard.

Why a process and not a thread: CBC and HiGHS run native code that ignores Python signals and can overrun
their own time limits (presolve, a stuck branch); a gateway that must keep curtailing cannot wait on them.
The child runs in its own session (process group), so a kill takes CBC's own subprocess with it.

The child is a persistent worker speaking JSON lines on stdin/stdout, so a rolling planner (or the
backtest, thousands of solves) pays Python's start-up once; any time-out, crash or garbled reply kills the
whole group and the next request starts a fresh one.

The model arrives as plain arrays (`planner.LinearModel.to_json`): HiGHS takes them directly through
highspy; CBC gets a PuLP model rebuilt from them. One request = both stages: solve the LP relaxation,
then the integer problem with every integer variable bounded to [floor(v)-1, ceil(v)+1] of its LP value
(widened to its full range only if that box is infeasible). Inside the box, a quick pass first fixes the
counts the LP already made integral; its answer stands if it is within `accept_gap` of the LP bound,
else it warm-starts the full box search. The reply carries the raw statuses; the parent decides.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["SOLVERS", "SolverWorker", "solve_request"]

SOLVERS = ("highs", "cbc")


def _bounds(values: list[float | None], default: float) -> list[float]:
    return [default if v is None else float(v) for v in values]


def _run_highs(
    model: Mapping[str, Any],
    lower: list[float],
    upper: list[float],
    *,
    mip: bool,
    limit: float,
    gap: float,
    start: list[float] | None = None,
) -> tuple[str, str, list[float], float | None]:
    import highspy

    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", max(0.05, limit))
    h.setOptionValue("mip_rel_gap", gap)
    h.setOptionValue("mip_heuristic_effort", float(model.get("heuristic_effort", 0.05)))
    lp = highspy.HighsLp()
    n, m = len(model["obj"]), len(model["row_lower"])
    lp.num_col_, lp.num_row_ = n, m
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = model["obj"]
    lp.col_lower_, lp.col_upper_ = lower, upper
    lp.row_lower_ = _bounds(model["row_lower"], -highspy.kHighsInf)
    lp.row_upper_ = _bounds(model["row_upper"], highspy.kHighsInf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, m
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = (
        model["starts"],
        model["index"],
        model["value"],
    )
    if mip:
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[int(i)] for i in model["integer"]]
    h.passModel(lp)
    if start:
        warm = highspy.HighsSolution()
        warm.col_value = start
        warm.value_valid = True
        h.setSolution(warm)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    feasible = info.primal_solution_status == 2
    if status == highspy.HighsModelStatus.kOptimal:
        solution = "optimal"
    else:
        solution = "feasible" if feasible else "none"
    x = list(h.getSolution().col_value) if feasible else []
    name = {
        highspy.HighsModelStatus.kOptimal: "Optimal",
        highspy.HighsModelStatus.kInfeasible: "Infeasible",
        highspy.HighsModelStatus.kTimeLimit: "TimeLimit",
    }.get(status, h.modelStatusToString(status))
    return name, solution, x, (info.objective_function_value if feasible else None)


def _run_cbc(
    model: Mapping[str, Any],
    lower: list[float],
    upper: list[float],
    *,
    mip: bool,
    limit: float,
    gap: float,
    start: list[float] | None = None,
) -> tuple[str, str, list[float], float | None]:
    import pulp

    inf = math.inf
    cols = [
        pulp.LpVariable(
            f"c{j}",
            None if lo == -inf else lo,
            None if hi == inf else hi,
            cat=pulp.LpInteger if mip and model["integer"][j] else pulp.LpContinuous,
        )
        for j, (lo, hi) in enumerate(zip(lower, upper, strict=True))
    ]
    prob = pulp.LpProblem("curtail", pulp.LpMaximize)
    prob += pulp.LpAffineExpression(list(zip(cols, model["obj"], strict=True)))
    starts, index, value = model["starts"], model["index"], model["value"]
    for r, (lo, hi) in enumerate(zip(model["row_lower"], model["row_upper"], strict=True)):
        expr = pulp.LpAffineExpression([(cols[index[k]], value[k]) for k in range(starts[r], starts[r + 1])])
        if lo is not None and hi is not None and lo == hi:
            prob += expr == lo, f"r{r}"
            continue
        if lo is not None:
            prob += expr >= lo, f"r{r}l"
        if hi is not None:
            prob += expr <= hi, f"r{r}u"
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, math.ceil(limit)), gapRel=gap, threads=1)
    prob.solve(solver)
    # PuLP reports a CBC time-out with an incumbent as status "Optimal": sol_status tells them apart.
    solution = {pulp.LpSolutionOptimal: "optimal", pulp.LpSolutionIntegerFeasible: "feasible"}.get(
        prob.sol_status, "none"
    )
    x = [v.varValue if v.varValue is not None else math.nan for v in cols] if solution != "none" else []
    return str(pulp.LpStatus[prob.status]), solution, x, pulp.value(prob.objective) if x else None


def solve_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """The child's work for one request (also callable in-process by tests of the protocol)."""
    started = time.monotonic()
    budget = float(request["time_limit_s"])
    name = str(request["solver"])
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}")
    run = _run_highs if name == "highs" else _run_cbc
    gap = float(request.get("gap_rel", 1e-4))
    model = request["model"]
    lower = _bounds(model["col_lower"], -math.inf)
    upper = _bounds(model["col_upper"], math.inf)
    lp_status, _, lp_x, lp_obj = run(model, lower, upper, mip=False, limit=budget, gap=gap)
    lp_s = time.monotonic() - started
    reply: dict[str, Any] = {"lp_status": lp_status, "lp_objective": lp_obj, "lp_s": lp_s}
    if lp_status != "Optimal":
        return reply | {"status": lp_status, "solution": "none", "x": [], "objective": None}
    box_lower, box_upper = list(lower), list(upper)
    for j, is_int in enumerate(model["integer"]):
        if is_int:
            v = lp_x[j]
            box_lower[j] = max(lower[j], math.floor(v + 1e-9) - 1)
            box_upper[j] = min(upper[j], math.ceil(v - 1e-9) + 1)
    # Quick pass: fix the counts the LP already made integral, box only the fractional ones. When its
    # answer is within `accept_gap` of the LP bound it is provably that close to the optimum (the LP bound
    # is an upper bound on every integer plan), so the full box search would only cost time.
    accept_gap = float(request.get("accept_gap", gap))
    quick_lower, quick_upper = list(box_lower), list(box_upper)
    for j, is_int in enumerate(model["integer"]):
        if is_int and abs(lp_x[j] - round(lp_x[j])) <= 1e-9:
            quick_lower[j] = quick_upper[j] = float(round(lp_x[j]))
    left = budget - (time.monotonic() - started)
    status, solution, x, obj = run(model, quick_lower, quick_upper, mip=True, limit=left / 4, gap=gap)
    quick = solution != "none" and obj is not None and lp_obj is not None
    if (
        obj is not None
        and lp_obj is not None
        and quick
        and lp_obj - obj <= accept_gap * max(abs(lp_obj), 1e-9)
    ):
        return reply | {
            "status": "Optimal",
            "solution": "optimal",
            "proof": "lp_bound",
            "objective": obj,
            "x": x[: int(model["n_x"])],
            "widened": False,
            "mip_s": time.monotonic() - started - lp_s,
        }
    left = budget - (time.monotonic() - started)
    incumbent = (status, solution, x, obj) if quick else None
    status, solution, x, obj = run(
        model, box_lower, box_upper, mip=True, limit=left, gap=gap, start=x if quick else None
    )
    if incumbent is not None and (solution == "none" or obj is None or (incumbent[3] or 0) > obj):
        status, solution, x, obj = incumbent[0], "feasible", incumbent[2], incumbent[3]
    widened = status == "Infeasible"
    if widened:
        left = budget - (time.monotonic() - started)
        status, solution, x, obj = run(model, lower, upper, mip=True, limit=left, gap=gap)
    return reply | {
        "status": status,
        "solution": solution,
        "objective": obj,
        "x": x[: int(model["n_x"])],
        "widened": widened,
        "proof": "solver",
        "mip_s": time.monotonic() - started - lp_s,
    }


class SolverWorker:
    """A persistent solver child with a hard deadline per request. Use as a context manager."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def __enter__(self) -> SolverWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.curtail.solver_proc"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self._proc

    def kill(self) -> None:
        """Kill the child's whole process group (the solver binary included) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            self.kills += 1
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()  # EOF: the child exits by itself
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def solve(self, request: Mapping[str, Any], *, hard_timeout_s: float) -> dict[str, Any] | str:
        """The child's reply, or a one-line reason (time-out, crash, garbled reply); never raises for them."""
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        deadline = time.monotonic() + hard_timeout_s
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except OSError as err:
            self.kill()
            return f"solver process died before the request ({err})"
        line = _read_line(proc.stdout, deadline)
        if line is None:
            self.kill()
            return f"solver killed after the hard limit of {hard_timeout_s:g} s"
        if not line:
            self.kill()
            return "solver process exited without a reply"
        try:
            reply = json.loads(line)
        except ValueError:
            self.kill()
            return "solver process sent a garbled reply"
        if not isinstance(reply, dict):
            self.kill()
            return "solver process sent a reply that is not an object"
        if "error" in reply:
            return f"solver error: {reply['error']}"
        return reply


def _read_line(stream: IO[bytes], deadline: float) -> bytes | None:
    """One line by `deadline` (None on time-out; b"" at EOF)."""
    fd = stream.fileno()
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


def _main() -> None:
    for raw in sys.stdin.buffer:
        try:
            reply = solve_request(json.loads(raw))
        except Exception as err:  # the parent gets every failure as a reply, never a hang
            reply = {"error": f"{type(err).__name__}: {err}"[:500]}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _main()
