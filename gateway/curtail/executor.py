"""The curtailment executor: per-class targets -> verified, audited sleep/wake actions on concrete miners.

One `tick` per poll cycle (or per plan period) does, in order:

1. observe: judge pending actions by the latest telemetry (`executor_verify`), spend retry budgets,
   find drift (a settled miner whose state contradicts the intention) and update the last event's
   realised kW from metered power;
2. decide: overrides win over the plan (force_on / force_off are driven, hold is left alone), then
   `executor_select.select` picks which miners meet each class's count;
3. act: unless `dry_run`, record the event, then dispatch in staggered batches; each action's row,
   the miner's new intention and the audit entry commit *before* the driver is called, and the
   driver returns only after read-back. Telemetry verification follows in later ticks.

Idempotent by construction: selection counts a miner by the executor's intention (not by telemetry that
lags a mode change by minutes), so applying the same targets twice issues no second action.

Sleep is the only curtailing control used: it keeps the control board up (so the miner stays readable
and verifiable) and is what every stock firmware that can curtail offers. Miners whose firmware cannot
sleep are skipped as `no_control`; power-target curtailment is a follow-up.

The executor is the source of the rules engine's intended states: `intended_states()` is what the runtime
hands `HealthMonitor(intended=...)`, so a planned sleep raises no alert.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence

from gateway.clock import Clock
from gateway.curtail import executor_store as store
from gateway.curtail import override as overrides
from gateway.curtail.executor_model import ExecutorSettings, FleetMember, PlannedAction, TickReport
from gateway.curtail.executor_select import MinerView, Selection, Skip, on_counts, select
from gateway.curtail.executor_store import MinerMemory
from gateway.curtail.executor_verify import Outcome, Pending, check, drifted, observed_on
from gateway.devices.driver import MinerDriver
from gateway.devices.errors import DeviceError
from gateway.rules.inputs import IntendedState

log = logging.getLogger(__name__)


class Executor:
    def __init__(
        self,
        conn: sqlite3.Connection,
        drivers: Mapping[str, MinerDriver],
        clock: Clock,
        settings: ExecutorSettings | None = None,
        *,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.conn = conn
        self.drivers = drivers
        self.clock = clock
        self.settings = settings or ExecutorSettings()
        self._pause = pause
        self._memory: dict[str, MinerMemory] = store.load_memory(conn)
        self._pending: dict[str, Pending] = {}
        self._last_event: tuple[int, int, tuple[PlannedAction, ...]] | None = None
        self._lock = asyncio.Lock()
        self._interrupt = asyncio.Event()

    # --- what other parts read -------------------------------------------------------------------

    def intended_states(self) -> dict[str, IntendedState]:
        """Per miner, what the executor last asked of it (for `HealthMonitor(intended=...)`)."""
        result: dict[str, IntendedState] = {}
        for miner_id, memory in self._memory.items():
            if memory.intended in ("sleep", "normal", "low", "high"):
                result[miner_id] = memory.intended  # type: ignore[assignment]
        return result

    def set_drivers(self, drivers: Mapping[str, MinerDriver]) -> None:
        """The runtime rebuilds its drivers when the inventory changes; the executor follows."""
        self.drivers = drivers

    def interrupt(self) -> None:
        """Cut a running tick short: it sends no further batch (nor waits out the gap before one), so
        newer targets - a curtail decided at a peak window's start - are not stuck behind a long wake
        tick. The batch in flight finishes (its read-backs are awaited, so no command is left half
        recorded); the unsent actions are reported as `interrupted` and the next tick decides afresh.
        A no-op when no tick is running."""
        if self._lock.locked():
            self._interrupt.set()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def memory(self, miner_id: str) -> MinerMemory | None:
        return self._memory.get(miner_id)

    def believed_on(self, members: Sequence[FleetMember]) -> dict[str, int]:
        """Miners on per class as the executor believes (what a fail-policy `hold` keeps)."""
        return on_counts(self._view(m, {}, int(self.clock.now())) for m in members)

    # --- one tick ----------------------------------------------------------------------------------

    async def tick(
        self,
        members: Sequence[FleetMember],
        on_by_class: Mapping[str, int],
        *,
        source: str = "plan",
        reason: str = "",
        dry_run: bool = False,
    ) -> TickReport:
        async with self._lock:
            self._interrupt.clear()
            now = int(self.clock.now())
            by_id = {m.miner_id: m for m in members}
            verified, expired = ([], []) if dry_run else self._observe(by_id, now)
            active = overrides.resolve(overrides.active(self.conn, now), now)
            views = [self._view(m, active, now) for m in members]
            selection = select(views, on_by_class, now, self.settings.selection)
            planned = self._plan(by_id, views, selection, active, now)
            drift = tuple(a.miner_id for a in planned if a.reason == "drift")
            asked_w = sum(
                (a.baseline_w - a.expected_w)
                for a in planned
                if a.baseline_w is not None and a.reason != "drift"
            )
            report = TickReport(
                event_id=None,
                dry_run=dry_run,
                actions=tuple(planned),
                done=(),
                failed={},
                selection=selection,
                asked_kw=asked_w / 1000,
                verified=tuple(verified),
                expired=tuple(expired),
                drift=drift,
            )
            if dry_run or not planned:
                return report
            skips = {k.value: v for k, v in Counter(selection.skipped.values()).items()}
            event_id = store.insert_event(
                self.conn,
                now=now,
                source=source,
                reason=reason or source,
                targets=on_by_class,
                asked_w=asked_w,
                skips=skips,
                actor=self.settings.actor,
            )
            self._last_event = (event_id, now, tuple(planned))
            done, failed, interrupted = await self._dispatch(event_id, planned)
            return TickReport(
                interrupted=tuple(interrupted),
                event_id=event_id,
                dry_run=False,
                actions=tuple(planned),
                done=tuple(done),
                failed=failed,
                selection=selection,
                asked_kw=asked_w / 1000,
                verified=tuple(verified),
                expired=tuple(expired),
                drift=drift,
            )

    # --- observe -------------------------------------------------------------------------------------

    def _observe(self, by_id: Mapping[str, FleetMember], now: int) -> tuple[list[str], list[str]]:
        verified: list[str] = []
        expired: list[str] = []
        for miner_id, pending in list(self._pending.items()):
            member = by_id.get(miner_id)
            sample = member.sample if member else None
            outcome = check(
                pending,
                sample,
                now,
                window_s=self.settings.verify_window_s,
                fall_fraction=self.settings.fall_fraction,
            )
            if outcome is Outcome.PENDING:
                continue
            memory = self._memory[miner_id]
            del self._pending[miner_id]
            if outcome is Outcome.VERIFIED:
                memory.failures = 0
                memory.retry_after_ts = None
                power = sample.power_w if sample else None
                detail = f"telemetry: {power:.0f} W (baseline {pending.baseline_w:.0f} W)"
                status = "verified"
                verified.append(miner_id)
            else:
                self._fail(memory, now)
                self._disown(memory)
                detail = f"telemetry did not show the change within {self.settings.verify_window_s} s"
                status = "not_verified"
                expired.append(miner_id)
            store.finish_action(
                self.conn,
                action_id=pending.action_id,
                miner_id=miner_id,
                status=status,
                now=now,
                detail=detail,
                memory=memory,
                actor=self.settings.actor,
            )
        self._update_realised(by_id, now)
        return verified, expired

    def _update_realised(self, by_id: Mapping[str, FleetMember], now: int) -> None:
        """The last event's realised reduction: baseline minus the latest metered power of its miners."""
        if self._last_event is None:
            return
        event_id, started, planned = self._last_event
        if now - started > 2 * self.settings.verify_window_s:
            return  # settled long ago: its figure stands, no write per cycle
        total = 0.0
        for action in planned:
            member = by_id.get(action.miner_id)
            power = member.sample.power_w if member and member.sample else None
            if action.baseline_w is None or power is None or action.reason == "drift":
                continue
            total += action.baseline_w - power
        store.set_realised(self.conn, event_id, total, now)

    def _fail(self, memory: MinerMemory, now: int) -> None:
        memory.failures += 1
        budget_spent = memory.failures >= self.settings.max_attempts
        wait = self.settings.budget_reset_s if budget_spent else self.settings.retry_backoff_s
        memory.retry_after_ts = now + wait
        if budget_spent:
            memory.failures = 0  # a fresh budget once the reset time has passed

    @staticmethod
    def _disown(memory: MinerMemory) -> None:
        """After a failed or unverified action the executor no longer claims to know the miner's state.

        Its intention was recorded before the driver call (so a crash mid-dispatch is finished by drift
        detection); once the call has failed, or telemetry never showed the change, keeping it would count
        a hashing miner as asleep - selection would pick no substitute and the rules engine would be told
        a planned sleep. Cleared, the miner counts as what telemetry shows until it is acted on again."""
        memory.intended = None
        memory.intended_ts = None

    # --- decide --------------------------------------------------------------------------------------

    def _view(
        self, member: FleetMember, active: Mapping[str, overrides.OverrideAction], now: int
    ) -> MinerView:
        memory = self._memory.get(member.miner_id)
        sample = member.sample
        if memory is not None and memory.intended is not None:
            on = memory.intended != "sleep"
        else:
            on = self._seen(member) is not False
        blocked: Skip | None = None
        driver = self.drivers.get(member.miner_id)
        if member.miner_id in active:
            blocked = Skip.OVERRIDE
        elif not member.reachable or self._seen(member) is None:
            blocked = Skip.UNREACHABLE
        elif driver is None or not (driver.capabilities.sleep and driver.capabilities.wake):
            blocked = Skip.NO_CONTROL
        elif memory is not None and memory.retry_after_ts is not None and now < memory.retry_after_ts:
            blocked = Skip.RETRY_BUDGET
        elif member.miner_id in self._pending:
            blocked = Skip.VERIFYING
        return MinerView(
            miner_id=member.miner_id,
            class_key=member.class_key,
            on=on,
            power_w=sample.power_w if sample else None,
            hashrate_ths=sample.hashrate_ths if sample else None,
            nominal_w=member.nominal_w,
            nominal_ths=member.nominal_ths,
            sleep_w=member.sleep_w,
            temp_c=sample.temp_max_c if sample else None,
            last_change_ts=memory.last_change_ts if memory else None,
            curtailed_s=memory.curtailed_s if memory else 0,
            cycles=memory.cycles if memory else 0,
            blocked=blocked,
        )

    def _plan(
        self,
        by_id: Mapping[str, FleetMember],
        views: Sequence[MinerView],
        selection: Selection,
        active: Mapping[str, overrides.OverrideAction],
        now: int,
    ) -> list[PlannedAction]:
        planned: list[PlannedAction] = []
        chosen = set(selection.curtail) | set(selection.resume)
        for miner_id in selection.curtail:
            planned.append(self._action(by_id[miner_id], "sleep", "plan"))
        for miner_id in selection.resume:
            planned.append(self._action(by_id[miner_id], "wake", "plan"))
        for view in views:
            member = by_id[view.miner_id]
            if view.miner_id in chosen or not self._controllable(member, now):
                continue
            forced = active.get(view.miner_id)
            if forced is overrides.OverrideAction.FORCE_OFF and self._seen(member):
                planned.append(self._action(member, "sleep", "override"))
            elif forced is overrides.OverrideAction.FORCE_ON and self._seen(member) is False:
                planned.append(self._action(member, "wake", "override"))
            elif forced is None:
                memory = self._memory.get(view.miner_id)
                if memory is None or memory.intended is None or view.miner_id in self._pending:
                    continue
                intended_on = memory.intended != "sleep"
                if drifted(intended_on, member.sample, sleep_w=member.sleep_w, nominal_w=member.nominal_w):
                    planned.append(self._action(member, "wake" if intended_on else "sleep", "drift"))
        return planned

    def _controllable(self, member: FleetMember, now: int) -> bool:
        driver = self.drivers.get(member.miner_id)
        memory = self._memory.get(member.miner_id)
        if driver is None or not (driver.capabilities.sleep and driver.capabilities.wake):
            return False
        if member.miner_id in self._pending or self._seen(member) is None:
            return False
        return not (memory and memory.retry_after_ts is not None and now < memory.retry_after_ts)

    @staticmethod
    def _seen(member: FleetMember) -> bool | None:
        return observed_on(member.sample, sleep_w=member.sleep_w, nominal_w=member.nominal_w)

    @staticmethod
    def _action(member: FleetMember, action: str, reason: str) -> PlannedAction:
        power = member.sample.power_w if member.sample else None
        if action == "sleep":
            return PlannedAction(
                miner_id=member.miner_id,
                action="sleep",
                reason=reason,
                baseline_w=power if power is not None else member.nominal_w,
                expected_w=member.sleep_w,
            )
        return PlannedAction(
            miner_id=member.miner_id,
            action="wake",
            reason=reason,
            baseline_w=power if power is not None else member.sleep_w,
            expected_w=member.nominal_w,
        )

    # --- act -----------------------------------------------------------------------------------------

    async def _dispatch(
        self, event_id: int, planned: Sequence[PlannedAction]
    ) -> tuple[list[str], dict[str, str], list[str]]:
        done: list[str] = []
        failed: dict[str, str] = {}
        size = self.settings.batch_size
        for start in range(0, len(planned), size):
            if start:
                await self._gap()
            if self._interrupt.is_set():
                return done, failed, [a.miner_id for a in planned[start:]]
            batch = planned[start : start + size]
            results = await asyncio.gather(*(self._one(event_id, a) for a in batch))
            for action, error in zip(batch, results, strict=True):
                if error is None:
                    done.append(action.miner_id)
                else:
                    failed[action.miner_id] = error
        return done, failed, []

    async def _gap(self) -> None:
        """The stagger between batches, ended early by `interrupt`."""
        pause = asyncio.ensure_future(self._pause(self.settings.batch_gap_s))
        woken = asyncio.ensure_future(self._interrupt.wait())
        try:
            await asyncio.wait((pause, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pause, woken):
                task.cancel()
            await asyncio.gather(pause, woken, return_exceptions=True)

    async def _one(self, event_id: int, action: PlannedAction) -> str | None:
        now = int(self.clock.now())
        memory = self._memory.setdefault(action.miner_id, MinerMemory(miner_id=action.miner_id))
        was_off = memory.intended == "sleep"
        memory.intended = "sleep" if action.action == "sleep" else "normal"
        memory.intended_ts = now
        action_id = store.insert_action(
            self.conn,
            event_id=event_id,
            now=now,
            miner_id=action.miner_id,
            action=action.action,
            reason=action.reason,
            attempt=memory.failures + 1,
            baseline_w=action.baseline_w,
            expected_w=action.expected_w,
            memory=memory,
            actor=self.settings.actor,
        )
        driver = self.drivers[action.miner_id]
        try:
            await (driver.sleep() if action.action == "sleep" else driver.wake())
        except DeviceError as err:
            self._fail(memory, int(self.clock.now()))
            self._disown(memory)
            message = f"{type(err).__name__}: {err}"
            store.finish_action(
                self.conn,
                action_id=action_id,
                miner_id=action.miner_id,
                status="failed",
                now=int(self.clock.now()),
                detail=message,
                memory=memory,
                actor=self.settings.actor,
            )
            return message
        done_ts = int(self.clock.now())
        if action.action == "sleep":
            memory.cycles += 1
        elif was_off and memory.last_change_ts is not None:
            memory.curtailed_s += max(0, done_ts - memory.last_change_ts)
        memory.last_change_ts = done_ts
        with store.transaction(self.conn):
            store.save_memory(self.conn, memory)
        self._pending[action.miner_id] = Pending(
            action_id=action_id,
            miner_id=action.miner_id,
            action=action.action,
            issued_ts=now,
            baseline_w=action.baseline_w if action.baseline_w is not None else 0.0,
            expected_w=action.expected_w,
        )
        return None
