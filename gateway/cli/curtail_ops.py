"""`hashinsight curtail show | apply | override`: the executor's side of the curtail command group.

The Typer group `curtail_app` lives in `gateway/cli/curtail.py`; it registers these commands with one
line: `register(curtail_app)`. Each command parses, calls a library function, prints.

`show` reads state.db read-only. `override` and `apply --execute` write it; until the local API has
curtailment routes they are meant for a site where the gateway is stopped or for a one-off action, and
SQLite's busy timeout serialises them with a running gateway's writer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway.cli.common import DataDirOption, data_dir, fail

_DURATION = re.compile(r"^(\d{1,7})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="HASHINSIGHT_CONFIG", help="Site configuration (TOML)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def register(app: typer.Typer) -> None:
    """Add `show`, `apply` and `override` to the curtail group."""
    app.command("show", short_help="The current plan's next periods, then recent events and overrides.")(
        show_command
    )
    app.command("apply", short_help="Apply per-class targets now (dry run unless --execute).")(apply_command)
    app.command("override", short_help="Hold, force on or force off a miner until an expiry.")(
        override_command
    )


def _state_path(data: Path | None) -> Path:
    return data_dir(data) / "state.db"


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        fail(f"{path}: no state database (has the gateway run here?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM curtail_events LIMIT 1")
    except sqlite3.DatabaseError as err:
        fail(f"{path}: no curtailment history ({err})")
    return conn


def show_command(
    data: DataDirOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Events to show.")] = 10,
    periods: Annotated[
        int, typer.Option("--periods", min=0, max=672, help="Plan periods (15 min each) to show from now.")
    ] = 8,
    as_json: JsonOption = False,
) -> None:
    """Show the current plan and the executor's recent events.

    The plan is the latest one the gateway adopted that covers now (as stored in state.db): its status,
    solver, value and LP bound (USD), explanation, and its next `--periods` 15-minute periods with the
    miners on per class, the planned load (kW), the price used ($/kWh, marked when forecast) and the
    reason. Then the events, newest first: when, why, the targets, the reduction asked (kW: sum of each
    miner's measured power before the action minus its profile sleep watts) and the reduction realised
    (kW, from the latest metered power), skip counts by reason, each action with its status, and the
    overrides in force.

    Example: `hashinsight curtail show --periods 12 --limit 5`"""
    from gateway.curtail import executor_store, override

    conn = _read_only(_state_path(data))
    now = int(time.time())
    plan, plan_note = _current_plan(conn, now)
    events = executor_store.recent_events(conn, limit)
    for event in events:
        event["actions"] = executor_store.actions_of(conn, event["id"])
    active = [
        {"miner_id": o.miner_id, "action": o.action.value, "expires_ts": o.expires_ts, "actor": o.actor}
        for o in override.active(conn, now)
    ]
    conn.close()
    if plan is not None:
        plan["periods"] = [p for p in plan["periods"] if p["start"] + plan["period_s"] > now][:periods]
    if as_json:
        typer.echo(json.dumps({"plan": plan, "events": events, "overrides": active}, indent=1))
        return
    if plan is None:
        typer.echo(plan_note)
    else:
        _print_plan(plan)
    if not events and not active:
        typer.echo("no curtailment events yet")
    for event in events:
        realised = "-" if event["realised_kw"] is None else f"{event['realised_kw']:.3f}"
        typer.echo(
            f"#{event['id']} {_when(event['started_ts'])} {event['source']}: {event['reason']} | "
            f"asked {event['asked_kw']:.3f} kW, realised {realised} kW"
        )
        if event["skips"]:
            typer.echo("  skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(event["skips"].items())))
        for action in event["actions"]:
            typer.echo(f"  {action['action']} {action['miner_id']} ({action['reason']}): {action['status']}")
    for item in active:
        typer.echo(
            f"override {item['action']} {item['miner_id']} until {_when(item['expires_ts'])} "
            f"by {item['actor']}"
        )


def _current_plan(conn: sqlite3.Connection, now: int) -> tuple[dict[str, Any] | None, str]:
    """The stored plan covering `now` as the API shows it, or None and why there is none."""
    from gateway.api_curtail import plan_json
    from gateway.curtail_plan_store import PlanStoreError, current_plan

    try:
        found = current_plan(conn, now)
    except sqlite3.OperationalError:
        return None, "no stored plans (the gateway has not run this version yet)"
    except PlanStoreError as err:
        return None, f"the stored plan cannot be read: {err}"
    if found is None:
        return None, "no plan covers now (curtailment off, or no plan made yet)"
    plan_id, plan = found
    return {"id": plan_id, **plan_json(plan)}, ""


def _print_plan(plan: dict[str, Any]) -> None:
    value = "-" if plan["objective_usd"] is None else plan["objective_usd"]
    bound = "-" if plan["lp_bound_usd"] is None else plan["lp_bound_usd"]
    typer.echo(
        f"plan #{plan['id']} {plan['status']} by {plan['solver']}, made {_when(plan['created_at'])}: "
        f"value {value} USD, LP bound {bound} USD"
    )
    typer.echo(f"  {plan['explanation']}")
    for period in plan["periods"]:
        on = " ".join(f"{k}={n}" for k, n in sorted(period["on"].items()))
        forecast = " (forecast)" if period["forecast"] else ""
        typer.echo(
            f"  {_when(period['start'])} {period['planned_kw']:>10} kW "
            f"{period['price_per_kwh']} $/kWh{forecast} | {on} | {period['reason']}"
        )


def apply_command(
    targets: Annotated[
        Path,
        typer.Option("--targets", "-t", help='JSON file: miners on per class, {"S21:normal": 40}.'),
    ],
    execute: Annotated[
        bool,
        typer.Option("--execute", help="Carry the actions out. Without it: a dry run that touches nothing."),
    ] = False,
    config: ConfigOption = None,
    data: DataDirOption = None,
) -> None:
    """Apply per-class targets to the inventory's miners now, as the executor would each cycle: it
    reads every miner once, picks which to sleep or wake (least efficient and hottest first, wear
    rotated, min on/off respected, untrustworthy telemetry skipped), and prints each action and the
    reduction asked in kW. Classes are `<model>:<mode>` as `curtail plan` prints them (the model may
    also be a firmware profile key, e.g. `antminer_s21|normal`); classes not in the file are
    left alone. Dry run by default; `--execute` sends the commands, each verified by read-back and
    audited.

    Example: `hashinsight curtail apply --targets spike.json` then `... --execute`"""
    from gateway.clock import SystemClock
    from gateway.config import ConfigError, load_settings
    from gateway.curtail.executor_apply import TargetsError, apply_once, drivers_for_inventory, parse_targets
    from gateway.curtail_service import executor_settings
    from gateway.devices.profiles import ProfileError, load_profiles
    from gateway.store.state import StateError, list_miners, open_state

    try:
        wanted = parse_targets(targets.read_bytes(), source=str(targets))
    except OSError as err:
        fail(f"{targets}: {err.strerror or err}")
    except TargetsError as err:
        fail(str(err))
    try:
        settings = load_settings(config)
        profiles = load_profiles()
    except (ConfigError, ProfileError) as err:
        fail(str(err), 2)
    path = _state_path(data or settings.data_dir)
    if execute:
        try:
            conn = open_state(path)
        except StateError as err:
            fail(str(err))
    else:  # a dry run changes nothing: no state.db created, no migration run
        conn = _read_only(path)
        conn.row_factory = sqlite3.Row  # as open_state's connections (the inventory reads rows by name)
    try:
        rows = list_miners(conn)
    except sqlite3.Error as err:
        fail(f"{path}: cannot read the inventory ({err})")
    if not rows:
        fail("the inventory is empty: register miners first (`hashinsight scan --register`)")
    drivers = drivers_for_inventory(rows, settings, profiles)
    report = asyncio.run(
        apply_once(
            conn,
            rows,
            drivers,
            profiles,
            SystemClock(),
            wanted,
            dry_run=not execute,
            settings=executor_settings(settings.curtail),
        )
    )
    conn.close()
    for line in report.lines():
        typer.echo(line)
    if not report.actions:
        typer.echo("nothing to do: every targeted class is already at its count")
    if report.failed:
        raise typer.Exit(1)


def override_command(
    miner_id: Annotated[str, typer.Argument(help="Miner id as in `hashinsight inventory list`.")],
    action: Annotated[
        str, typer.Option("--action", "-a", help="hold (leave as is) | force_on | force_off | clear.")
    ] = "hold",
    duration: Annotated[str, typer.Option("--for", help="How long: 30m, 4h, 2d (at most 7d).")] = "1h",
    note: Annotated[str, typer.Option("--note", help="Why, for the audit log.")] = "",
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who, for the audit log. Default: $USER.")
    ] = None,
    data: DataDirOption = None,
) -> None:
    """Override the plan for one miner until an expiry: `hold` keeps it as it is, `force_on` keeps it
    mining, `force_off` keeps it asleep; `clear` ends its overrides now. Overrides win over the plan,
    always expire, and are audited.

    Example: `hashinsight curtail override m-0042 --action force_off --for 4h --note "fan swap"`"""
    from gateway.curtail import override
    from gateway.store.state import StateError, list_miners, open_state

    who = (actor or os.environ.get("USER") or "").strip()
    if not who:
        fail("say who is acting: --actor NAME", 2)
    match = _DURATION.match(duration.strip())
    if action != "clear" and match is None:
        fail(f"--for {duration!r}: use a number and a unit, like 30m, 4h or 2d", 2)
    try:
        conn = open_state(_state_path(data))
    except StateError as err:
        fail(str(err))
    now = int(time.time())
    try:
        if action == "clear":
            count = override.clear(conn, miner_id=miner_id, actor=who, now=now)
            typer.echo(f"cleared {count} override(s) of {miner_id}")
            return
        assert match is not None
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
        known = {row.id: row for row in list_miners(conn)}
        made = override.add(
            conn, miner_id=miner_id, action=action, duration_s=seconds, actor=who, now=now, note=note,
            known_miners=known,
        )  # fmt: skip
    except ValueError as err:
        fail(str(err))
    finally:
        conn.close()
    typer.echo(f"{made.action.value} {made.miner_id} until {_when(made.expires_ts)} (override #{made.id})")


def _when(ts: Any) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
