"""`hashinsight alerts list | show | ack | suppress | unsuppress | resolve`: a shell over the running
gateway's local API. The gateway owns state.db (one writer), so these commands never open it; every
human action lands in the alert's history and the audit log under `--actor` (default: $USER)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import time
from typing import Annotated, Any

import aiohttp
import typer

from gateway.cli.common import fail

alerts_app = typer.Typer(help="Open alerts: list, acknowledge, suppress, resolve.", no_args_is_help=True)

DEFAULT_API = "http://127.0.0.1:8470"
ApiOption = Annotated[str, typer.Option("--api", help="The gateway's local API.")]
ActorOption = Annotated[
    str | None,
    typer.Option("--actor", help="Who is acting, for the audit log. Default: $USER.", show_default=False),
]
IdArgument = Annotated[int, typer.Argument(min=1, help="Alert id (see `hashinsight alerts list`).")]
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _call(api: str, method: str, path: str, *, body: Any = None, params: Any = None) -> Any:
    """One request; every way it can fail ends as a one-line error, not a traceback."""

    async def go() -> tuple[int, str]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, api.rstrip("/") + path, json=body, params=params) as response,
        ):
            return response.status, await response.text()

    try:
        status, text = asyncio.run(go())
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
        fail(f"no gateway answering at {api} ({err or type(err).__name__}); is `hashinsight run` running?")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if status >= 400:
        message = data.get("error") if isinstance(data, dict) else text.strip()[:200]
        fail(f"{message} (HTTP {status})")
    if data is None:
        fail(f"{api} answered with something that is not JSON; is that a HashInsight gateway?")
    return data


def _actor(option: str | None) -> str:
    actor = (option or os.environ.get("USER") or "").strip()
    if not actor:
        fail("who is acting? pass --actor NAME (or set $USER)", 2)
    return actor


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d', '1h30m' -> seconds."""
    compact = text.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise typer.BadParameter(f"{text!r} is not a duration like 30m, 2h, 1d or 1h30m")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%MZ")


def _print_alert(alert: dict[str, Any]) -> None:
    state = alert["state"]
    if state == "acked":
        state = f"acked({alert['acked_by']})"
    elif state == "suppressed":
        state = f"suppressed until {_when(alert['suppressed_until'])}"
    typer.echo(
        f"{alert['id']:>6} {alert['severity']:3} {alert['miner_id']:20} {alert['rule']:24} "
        f"{_when(alert['opened_at']):17} {state}  {alert['detail']}"
    )


def _done(reply: dict[str, Any], verb: str) -> None:
    alert = reply["alert"]
    changed = "" if reply["events"] else " (no change)"
    typer.echo(
        f"alert {alert['id']} {verb}{changed}: {alert['miner_id']} {alert['rule']} -> {alert['state']}"
    )


@alerts_app.command("list")
def list_command(
    state: Annotated[
        str, typer.Option(help="open (all live) | unacked | acked | suppressed | resolved | all.")
    ] = "open",
    severity: Annotated[list[str] | None, typer.Option(help="P0..P3; repeat or comma-separate.")] = None,
    miner: Annotated[str | None, typer.Option(help="Only this miner id.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=5000)] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON as served.")] = False,
    api: ApiOption = DEFAULT_API,
) -> None:
    """List alerts, worst and oldest first (live ones) or newest first (resolved/all)."""
    params: dict[str, str] = {"state": state, "limit": str(limit)}
    if severity:
        params["severity"] = ",".join(severity)
    if miner:
        params["miner_id"] = miner
    if rule:
        params["rule"] = rule
    reply = _call(api, "GET", "/api/alerts", params=params)
    if as_json:
        typer.echo(json.dumps(reply, indent=2))
        return
    for alert in reply["alerts"]:
        _print_alert(alert)
    typer.echo(f"{reply['count']} alert(s)", err=True)


@alerts_app.command("show")
def show_command(alert_id: IdArgument, api: ApiOption = DEFAULT_API) -> None:
    """One alert and its full history (who did what, when)."""
    alert = _call(api, "GET", f"/api/alerts/{alert_id}")
    _print_alert(alert)
    if alert.get("suppress_reason"):
        typer.echo(f"       suppressed by {alert['suppressed_by']}: {alert['suppress_reason']}")
    for entry in alert["history"]:
        typer.echo(f"       {_when(entry['ts'])} {entry['kind']:12} {entry['actor']:16} {entry['detail']}")


@alerts_app.command("ack")
def ack_command(
    alert_ids: Annotated[list[int], typer.Argument(min=1, help="One or more alert ids.")],
    note: Annotated[str, typer.Option(help="Optional note for the history.")] = "",
    actor: ActorOption = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Acknowledge alerts: someone is on it. Several ids are acked together or not at all."""
    who = _actor(actor)
    if len(alert_ids) == 1:
        reply = _call(api, "POST", f"/api/alerts/{alert_ids[0]}/ack", body={"actor": who, "note": note})
        _done(reply, "acked")
        return
    reply = _call(api, "POST", "/api/alerts/ack", body={"actor": who, "ids": alert_ids, "note": note})
    typer.echo(
        f"acked {len(reply['events'])} of {len(reply['alerts'])} alert(s) (the rest were already acked)"
    )


@alerts_app.command("suppress")
def suppress_command(
    alert_id: IdArgument,
    reason: Annotated[str, typer.Option(help="Why (maintenance, known issue ...). Required.")],
    for_: Annotated[str | None, typer.Option("--for", help="How long: 30m, 2h, 1d, 1h30m.")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Until when: ISO 8601 with a zone (2025-01-31T18:00Z) or epoch seconds."),
    ] = None,
    actor: ActorOption = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Silence an alert's notifications until a time; it is still tracked and listed."""
    if (for_ is None) == (until is None):
        fail("give exactly one of --for DURATION or --until TIME", 2)
    target: int | str
    if for_ is not None:
        target = int(time.time()) + parse_duration(for_)
    else:
        assert until is not None
        target = int(until) if until.strip().isdigit() else until
    body = {"actor": _actor(actor), "until": target, "reason": reason}
    _done(_call(api, "POST", f"/api/alerts/{alert_id}/suppress", body=body), "suppressed")


@alerts_app.command("unsuppress")
def unsuppress_command(alert_id: IdArgument, actor: ActorOption = None, api: ApiOption = DEFAULT_API) -> None:
    """End a suppression before its time."""
    _done(
        _call(api, "POST", f"/api/alerts/{alert_id}/unsuppress", body={"actor": _actor(actor)}),
        "unsuppressed",
    )


@alerts_app.command("resolve")
def resolve_command(
    alert_id: IdArgument,
    note: Annotated[str, typer.Option(help="Optional note: what was done.")] = "",
    actor: ActorOption = None,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Close an alert by hand. If the condition is still there it reopens after its debounce."""
    body = {"actor": _actor(actor), "note": note}
    _done(_call(api, "POST", f"/api/alerts/{alert_id}/resolve", body=body), "resolved")
