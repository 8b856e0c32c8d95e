"""The running gateway's curtailment loop: plan on a schedule, carry the plan out every poll cycle.

Two rhythms, kept apart on purpose:

- planning (`CurtailService.run`): every `replan_interval_s`, on demand (`request_replan`, the API's
  POST /api/curtail/replan), when the fleet's classes change, and when a real price arrives for a
  period the current plan had to forecast. The request is built on the event loop (state.db has one
  connection, owned by this thread) and solved in a worker thread, because the solver takes seconds and
  the poller must never wait for it.
- execution (`on_cycle`, called from `Gateway._on_cycle`): hands the poller's latest samples to
  `Executor.tick` as its own task. A tick reads back every control it sends, which on real Antminers
  takes a minute per batch, so the cycle callback never awaits it; while one tick runs, later cycles
  start none (the executor is idempotent, the next cycle after it catches up).

When an input fails - no stored price covers the current period (feed stale), or there is no usable
plan (the planner failed, or the plan ran out) - `fail_policy.decide` chooses hold, curtail or resume,
and that is what the executor is given; the reason is logged once per change and shown by the API.

Every adopted plan is stored in state.db (migration 0008, `curtail_plan_store`), so a restarted gateway
resumes the latest plan still covering `now` (and the minimum on/off times carry over from it) instead of
following the fail policy until its first re-plan. The problem itself is built in `curtail_request`
(pure) from what `curtail_inputs` reads: owners with uptime commitments, the tariff's demand rate and the
month's metered peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import duckdb

from gateway.clock import Clock
from gateway.config import CurtailSettings
from gateway.curtail.executor import Executor
from gateway.curtail.executor_model import ExecutorSettings, FleetMember, member_for
from gateway.curtail.executor_select import SelectionSettings
from gateway.curtail.fail_policy import FailPolicy, Input, decide
from gateway.curtail.plan_model import Plan
from gateway.curtail.planner_solve import make_plan
from gateway.curtail_inputs import Query, owners_at, read_demand, recent_changes
from gateway.curtail_plan_store import PlanStoreError, current_plan, save_plan
from gateway.curtail_request import (
    HISTORY_S,
    MODE,
    PERIOD_S,
    Demand,
    build_request,
    class_key,
    classes_of,
    committed_owners,
    customers_of,
    known_prices,
)
from gateway.devices.profiles import MinerProfile, ProfileCatalog
from gateway.energy.tariffs import TariffError
from gateway.polling import Availability, PollCoordinator
from gateway.store.energy_state import load_prices
from gateway.store.state import InventoryRow

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 60.0  # a failed plan is not retried every poll cycle (the log would flood)
DAY_S = 86_400


class PlanningError(RuntimeError):
    """No plan could be made; the one-line message says why (no prices, no classes, solver crash)."""


# --- pure pieces -------------------------------------------------------------------------------------


def executor_settings(cfg: CurtailSettings) -> ExecutorSettings:
    """The executor's per-miner minimum on/off times are the planner's, in seconds, less half a period.

    The plan counts whole periods, but its actions land some seconds into a period (a tick waits for a
    poll cycle and read-backs), so a miner switched late in period t and planned to switch back early
    in period t + n has had slightly less than n periods. Requiring the full n x 900 s would make the
    executor refuse exactly the plan it was given; half a period of slack keeps the intent (no
    switching inside one period) and lets it follow the plan."""
    return ExecutorSettings(
        selection=SelectionSettings(
            min_on_s=cfg.min_on_periods * PERIOD_S - PERIOD_S // 2,
            min_off_s=cfg.min_off_periods * PERIOD_S - PERIOD_S // 2,
        ),
        batch_size=cfg.batch_size,
        batch_gap_s=cfg.batch_gap_s,
        verify_window_s=cfg.verify_window_s,
    )


def policy_from_settings(cfg: CurtailSettings) -> FailPolicy:
    """The configured responses; the 4CP windows are the known peaks a failure must never hold through."""
    base = FailPolicy.from_mapping({str(k): v for k, v in cfg.fail_policy.items()})
    windows = tuple((int(a.timestamp()), int(b.timestamp())) for a, b in cfg.cp_windows)
    return dataclasses.replace(
        base, must_curtail_windows=windows, ramp_kw_per_period=cfg.ramp_kw_per_period, period_s=PERIOD_S
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """What the executor is given this cycle, and why (`source` plan | fail_policy)."""

    on_by_class: Mapping[str, int]
    source: str
    reason: str
    failed: tuple[Input, ...] = ()


def choose_targets(
    *,
    plan: Plan | None,
    now: int,
    price_known: bool,
    planner_ok: bool,
    believed_on: Mapping[str, int],
    full_on: Mapping[str, int],
    policy: FailPolicy,
    kw_by_class: Mapping[str, float] | None = None,
) -> Targets:
    """The plan's period covering `now` while every input is healthy; otherwise the fail policy's answer.

    The planner input fails only when no plan covers `now`: a failed re-plan leaves the last plan valid
    (it was made on real prices, under every constraint, and already ramps into the known peak windows),
    so it is followed to its end - throwing it away would hold full load to the window and then drop the
    site at once. `kw_by_class` lets the fail policy ramp ahead of a must-curtail window."""
    failed: list[Input] = []
    if not price_known:
        failed.append(Input.PRICE_FEED)
    period = plan.target_at(now) if plan is not None else None
    if period is None:
        failed.append(Input.PLANNER)
    if failed:
        decision = decide(
            failed, policy, now, current_on=believed_on, full_on=full_on, kw_by_class=kw_by_class
        )
        return Targets(
            on_by_class=dict(decision.on_by_class or {}),
            source="fail_policy",
            reason=decision.reason,
            failed=tuple(failed),
        )
    assert period is not None and plan is not None
    reason = period.reason
    if not planner_ok:
        reason = f"{reason} (last re-plan failed: following the plan made at {plan.created_at})".lstrip()
    return Targets(on_by_class=dict(period.on_by_class), source="plan", reason=reason)


def _sheds_more(new: Targets, running: Targets | None) -> bool:
    """Whether `new` asks any class for fewer miners on than the targets the running tick follows."""
    if running is None:
        return False
    return any(n < running.on_by_class.get(k, n) for k, n in new.on_by_class.items())


def _next_backoff(previous: float | None, ceiling: float) -> float:
    return min(ceiling, RETRY_AFTER_FAILURE_S if previous is None else previous * 2)


# --- the service --------------------------------------------------------------------------------------


class CurtailService:
    """`query` (the telemetry store's reader), `timezone` and `demand_interval_s` feed the demand charge;
    without `query` the planner is told of none (see `curtail_inputs.read_demand`)."""

    def __init__(
        self,
        cfg: CurtailSettings,
        *,
        conn: sqlite3.Connection,
        executor: Executor,
        clock: Clock,
        profiles: ProfileCatalog,
        inventory: Callable[[], Mapping[str, InventoryRow]],
        poller: PollCoordinator,
        query: Query | None = None,
        timezone: str = "UTC",
        demand_interval_s: int = 900,
    ) -> None:
        self.cfg = cfg
        self.conn = conn
        self.executor = executor
        self.clock = clock
        self.profiles = profiles
        self.policy = policy_from_settings(cfg)
        self._inventory = inventory
        self._poller = poller
        self._query = query
        self._tz = timezone
        self._demand_interval_s = demand_interval_s
        self.plan: Plan | None = None
        self.plan_id: int | None = None
        self.planner_ok = True
        self.last_error: str | None = None
        self.last_targets: Targets | None = None
        self._wake = asyncio.Event()
        self._plan_lock = asyncio.Lock()
        self._tick_task: asyncio.Task[None] | None = None
        self._chained = False  # a tick is queued behind an interrupted one
        self._behind: asyncio.Task[None] | None = None  # the interrupted tick it waits for
        self._price_replan_for: int | None = None
        self._failed_mono: float | None = None
        self._resume()

    def _resume(self) -> None:
        """Adopt the latest stored plan covering now; a damaged or missing one means planning afresh."""
        try:
            found = current_plan(self.conn, int(self.clock.now()))
        except (sqlite3.Error, PlanStoreError) as err:
            log.warning("curtailment: the stored plan cannot be resumed (%s); planning afresh", err)
            return
        if found is not None:
            self.plan_id, self.plan = found
            log.info("curtailment resumes stored plan %d (%s, made at %d)", *found, found[1].created_at)

    # --- fleet ---------------------------------------------------------------------------------------

    def _profiles_by_miner(self) -> dict[str, MinerProfile]:
        out: dict[str, MinerProfile] = {}
        for miner_id, row in self._inventory().items():
            if row.profile_key:
                with contextlib.suppress(KeyError):
                    out[miner_id] = self.profiles.get(row.profile_key)
        return out

    def _owner_of(self, now: int) -> dict[str, str]:
        """miner -> owner, for owners with an uptime commitment only (nothing read when none is set)."""
        if not self.cfg.customer_min_uptime_pct:
            return {}
        return committed_owners(owners_at(self.conn, now), self.cfg.customer_min_uptime_pct)

    def members(self) -> list[FleetMember]:
        """Each inventory miner's latest poll sample and figures; no profile, no class (left alone)."""
        profiles = self._profiles_by_miner()
        states = self._poller.states()
        now = self.clock.now()
        owner_of = self._owner_of(int(now))
        return [
            member_for(
                miner_id,
                class_key(profile, owner_of.get(miner_id)) if (profile := profiles.get(miner_id)) else None,
                state.last_sample if (state := states.get(miner_id)) else None,
                profile,
                mode=MODE,
                reachable=self._poller.availability(miner_id, now) in (Availability.OK, Availability.FAILING),
            )
            for miner_id in self._inventory()
        ]

    @staticmethod
    def _full_on(members: Sequence[FleetMember]) -> dict[str, int]:
        return dict(Counter(m.class_key for m in members if m.class_key is not None))

    # --- planning ------------------------------------------------------------------------------------

    def request_replan(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Re-plan every `replan_interval_s` and whenever asked; a failure is logged, never fatal.

        Any exception from a re-plan (a PlanningError, or a bug) is caught here: an uncaught one would end
        this task silently and the gateway would never plan again. After a failure the next attempt
        comes sooner than the schedule, backing off (RETRY_AFTER_FAILURE_S, doubling, capped at the
        re-plan interval) so a persistent fault does not flood the log."""
        backoff: float | None = None
        while not stop.is_set():
            timeout = self.cfg.replan_interval_s if backoff is None else backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            self._wake.clear()
            if stop.is_set():
                return
            if not any(s.last_sample for s in self._poller.states().values()):
                continue  # nothing read yet: the first cycle asks again
            try:
                await self.replan()
            except PlanningError:
                backoff = _next_backoff(backoff, self.cfg.replan_interval_s)
            except Exception:
                log.exception("curtailment planning raised; retrying")
                backoff = _next_backoff(backoff, self.cfg.replan_interval_s)
            else:
                backoff = None

    async def replan(self) -> Plan:
        """Plan from the current period; keeps, stores and returns the new plan, or raises PlanningError
        (and the fail policy takes over until a plan succeeds)."""
        async with self._plan_lock:
            try:
                try:
                    plan = await self._replan()
                except (sqlite3.Error, duckdb.Error) as err:  # e.g. "database is locked" by a CLI write
                    raise PlanningError(f"reading the inputs: {type(err).__name__}: {err}") from err
            except PlanningError as err:
                self.planner_ok, self.last_error = False, str(err)
                self._failed_mono = self.clock.monotonic()
                log.warning("curtailment planning failed: %s", err)
                raise
            self.plan, self.planner_ok, self.last_error = plan, True, None
            self._store(plan)
            log.info("curtailment plan %s (%s, %.2f s): %s", plan.status, plan.solver, plan.solve_s,
                     plan.explanation)  # fmt: skip
            return plan

    def _store(self, plan: Plan) -> None:
        """A plan that cannot be stored is still followed; only a restart would lose it."""
        now = int(self.clock.now())
        try:
            self.plan_id = save_plan(self.conn, plan, now=now, keep_s=self.cfg.plan_history_days * DAY_S)
        except (sqlite3.Error, PlanStoreError) as err:
            self.plan_id = None
            log.warning("curtailment plan not stored (a restart will plan afresh): %s", err)

    def _demand(self, now: int) -> Demand:
        try:
            return read_demand(
                self.conn, self._query, now=now, tz=self._tz, demand_interval_s=self._demand_interval_s
            )
        except (sqlite3.Error, duckdb.Error, ValueError) as err:
            return Demand(note=f"demand not modelled: {type(err).__name__}: {err}")

    async def _replan(self) -> Plan:
        now = int(self.clock.now())
        start = now - now % PERIOD_S
        members = self.members()
        profiles = self._profiles_by_miner()
        owner_of = self._owner_of(now)
        classes = classes_of(profiles, owner_of)
        if not classes:
            raise PlanningError("no inventory miner has a firmware profile: nothing to plan")
        demand = self._demand(now)
        try:
            series = load_prices(
                self.conn,
                self.cfg.price_series,
                start - HISTORY_S,
                start + self.cfg.horizon_periods * PERIOD_S,
            )
            request = build_request(
                cfg=self.cfg,
                classes=classes,
                known=known_prices(series),
                start=start,
                initial_on=self.executor.believed_on(members),
                changes=recent_changes(
                    self.conn,
                    {m.miner_id: m.class_key for m in members if m.class_key is not None},
                    start=start,
                    back_periods=max(self.cfg.min_on_periods, self.cfg.min_off_periods),
                ),
                customers=customers_of(profiles, owner_of, self.cfg.customer_min_uptime_pct),
                tz=self._tz,
                demand=demand,
            )
        except (TariffError, ValueError) as err:
            raise PlanningError(str(err)) from err
        try:
            plan = await asyncio.to_thread(
                make_plan, request, now=now, solver=self.cfg.solver, time_limit_s=self.cfg.time_limit_s
            )
        except Exception as err:  # make_plan falls back by itself; anything else is a bug to report
            raise PlanningError(f"planner crashed: {type(err).__name__}: {err}") from err
        return dataclasses.replace(plan, explanation=f"{plan.explanation} Demand: {demand.note}.")

    def _price_known(self, now: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM price_points WHERE series = ? AND start <= ? AND start + interval_s > ? LIMIT 1",
            (self.cfg.price_series, now, now),
        ).fetchone()
        return row is not None

    # --- execution -----------------------------------------------------------------------------------

    def on_cycle(self) -> None:
        """Called at the end of each poll cycle, on the event loop; returns at once, never raises (a
        locked state.db or a bug here must not stop polling; the next cycle tries again).

        While a tick runs, later cycles start none - unless the targets now shed more than the running
        tick's (a peak window began, the fail policy took over): then the running tick is cut short
        after its batch in flight (`Executor.interrupt`) and a new tick follows it at once."""
        try:
            now = int(self.clock.now())
            members = self.members()
            if self._replan_wanted(now, members):
                self.request_replan()
            targets = self._targets(members, now)
        except Exception:
            log.exception("curtailment cycle failed; it runs again next cycle")
            return
        running = self._tick_task if self._tick_task is not None and not self._tick_task.done() else None
        if running is not None:
            if self._chained or not _sheds_more(targets, self.last_targets):
                return
            self.executor.interrupt()
            self._chained, self._behind = True, running
        self._tick_task = asyncio.create_task(self._tick(members, targets, running), name="curtail-tick")

    def _targets(self, members: Sequence[FleetMember], now: int) -> Targets:
        kw: dict[str, float] = {}
        for m in members:
            if m.class_key is not None:
                kw.setdefault(m.class_key, m.nominal_w / 1000)
        return choose_targets(
            plan=self.plan,
            now=now,
            price_known=self._price_known(now),
            planner_ok=self.planner_ok,
            believed_on=self.executor.believed_on(members),
            full_on=self._full_on(members),
            policy=self.policy,
            kw_by_class=kw,
        )

    def _replan_wanted(self, now: int, members: Sequence[FleetMember]) -> bool:
        """No plan yet, the fleet changed under the plan, or a real price replaced a forecast one."""
        if self._plan_lock.locked():
            return False
        failed = self._failed_mono
        if failed is not None and self.clock.monotonic() - failed < RETRY_AFTER_FAILURE_S:
            return False  # the schedule, an operator or the next minute tries again
        if self.plan is None or {c.key: c.count for c in self.plan.classes} != self._full_on(members):
            return True
        period = self.plan.target_at(now)
        if period is None or not period.forecast or self._price_replan_for == period.start:
            return False
        if not self._price_known(now):
            return False
        self._price_replan_for = period.start  # once per period, however many cycles see it
        return True

    async def _tick(
        self, members: Sequence[FleetMember], targets: Targets, after: asyncio.Task[None] | None = None
    ) -> None:
        if after is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(after)  # its batch in flight finishes first
            self._chained = False
        try:
            previous = self.last_targets
            if previous is None or (previous.source, previous.reason) != (targets.source, targets.reason):
                log.info("curtailment follows %s: %s", targets.source, targets.reason)
            self.last_targets = targets
            report = await self.executor.tick(
                members, targets.on_by_class, source=targets.source, reason=targets.reason
            )
            for miner_id, why in sorted(report.failed.items()):
                log.warning("curtailment action on %s failed: %s", miner_id, why)
        except Exception:  # a bug here must never stop polling; the next cycle tries again
            log.exception("curtailment tick failed; it runs again next cycle")

    async def stop(self) -> None:
        """Cancel the running tick (and one it was queued behind); a tick that had died is logged."""
        for task in (self._tick_task, self._behind):
            if task is None:
                continue
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("curtailment tick ended with an error")
