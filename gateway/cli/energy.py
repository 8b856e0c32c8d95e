"""`hashinsight energy site`: the site's hourly, daily or monthly energy figures from the running gateway.

A shell over `GET /api/energy/site` (gateway/api_energy.py): the gateway owns telemetry.duckdb while it runs,
so this never opens it. Also home of the small JSON-over-HTTP helper the settle command uses to ask the
gateway first.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

import aiohttp
import typer

from gateway.cli.alerts import DEFAULT_API
from gateway.cli.common import fail

energy_app = typer.Typer(
    help="Site energy figures (kWh, coverage, cost, peak demand, CO2) from the running gateway.",
    no_args_is_help=True,
)

ApiOption = Annotated[
    str, typer.Option("--api", help="The gateway's local API (see [api] in site.toml).", show_default=True)
]
LEVELS = ("hour", "day", "month")
_DAY_OR_EPOCH = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,16}")


class NoGateway(Exception):
    """Nothing accepted a connection at the API address: no gateway is running there."""


def request_json(
    api: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, str] | None = None,
    read_timeout_s: float = 30.0,
) -> tuple[int, Any]:
    """One request -> (HTTP status, decoded JSON). Raises NoGateway when nothing listens; every other
    failure (timeout mid-reply, not JSON: not our gateway) ends as a one-line error, not a traceback."""

    async def go() -> tuple[int, str]:
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=read_timeout_s)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, api.rstrip("/") + path, json=body, params=params) as response,
        ):
            return response.status, await response.text()

    try:
        status, text = asyncio.run(go())
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
        raise NoGateway(str(err) or type(err).__name__) from None
    except aiohttp.InvalidURL:
        fail(f"--api {api!r} is not a URL like {DEFAULT_API}", 2)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
        fail(f"the gateway at {api} did not answer ({err or type(err).__name__})")
    try:
        return status, json.loads(text)
    except ValueError:
        if status >= 400:  # an error page (another server, an older gateway without the route): no JSON
            return status, None
        fail(f"{api} answered HTTP {status} with something that is not JSON; is that a HashInsight gateway?")


def error_of(status: int, data: Any) -> str:
    message = data.get("error") if isinstance(data, dict) else None
    return f"{message or 'unexpected reply'} (HTTP {status})"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value} %"


def figure_line(fig: dict[str, Any]) -> str:
    """label  kWh  coverage %  estimated %  cost  peak kW  CO2 kg ('-' where the site has no price/factor)."""
    energy = fig["energy"]
    cost = "-" if fig["cost"] is None else f"{fig['cost']} {fig['currency']}"
    peak = "-" if fig["peak"] is None else fig["peak"]["kw"]
    co2 = "-" if fig["co2"] is None else fig["co2"]["kg"]
    return (
        f"{fig['label']:20} {energy['kwh']:>14} {_pct(energy['coverage_pct']):>10} "
        f"{_pct(energy['estimated_pct']):>10} {cost:>18} {peak:>10} {co2:>12}"
    )


HEADER = (
    f"{'period':20} {'kWh':>14} {'coverage':>10} {'estimated':>10} {'cost':>18} {'peak kW':>10} "
    f"{'CO2 kg':>12}"
)


def _when(value: str | None) -> str | None:
    if value is not None and not _DAY_OR_EPOCH.fullmatch(value):
        raise typer.BadParameter(f"{value!r}: use YYYY-MM-DD (local midnight, site zone) or epoch seconds")
    return value


@energy_app.command("site")
def site_command(
    level: Annotated[str, typer.Option(help="hour | day | month (the site's local calendar).")] = "day",
    since: Annotated[
        str | None,
        typer.Option(help="First bucket, YYYY-MM-DD (local midnight) or epoch s. Default: one span back."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End (exclusive), YYYY-MM-DD or epoch s. Default: now.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON as served.")] = False,
    api: ApiOption = DEFAULT_API,
) -> None:
    """Print the site's energy per local hour, day or month: kWh, how much of the time was metered
    (coverage %) and how much of the energy was estimated from profiles (estimated %), cost under the
    tariff in force, the peak 15-minute demand (kW) and CO2 (kg). Default span: 24 h of hours, 31 days
    of days, 12 months of months.

    Example: `hashinsight energy site --level day --since 2024-06-01 --until 2024-07-01`
    """
    if level not in LEVELS:
        raise typer.BadParameter(f"{level!r}: use hour, day or month", param_hint="--level")
    params = {"level": level}
    for name, value in (("since", _when(since)), ("until", _when(until))):
        if value is not None:
            params[name] = value
    try:
        status, data = request_json(api, "GET", "/api/energy/site", params=params)
    except NoGateway as err:
        fail(f"no gateway answering at {api} ({err}); is `hashinsight run` running?")
    if status != 200:
        fail(error_of(status, data), 2 if status == 400 else 1)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    figures = data["figures"]
    if not figures:
        typer.echo(f"no {level} figures from {data['since']} to {data['until']} yet (zone {data['tz']})")
        return
    typer.echo(f"{HEADER}   ({data['tz']})")
    for fig in figures:
        typer.echo(figure_line(fig))
    if data["truncated"]:
        typer.echo(f"(only the first {len(figures)} shown: narrow --since/--until)")
