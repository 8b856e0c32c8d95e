"""The `hashinsight` command: a thin shell over the library. Each group lives in its own module."""

from __future__ import annotations

import sys

import typer

from gateway.cli.alerts import alerts_app
from gateway.cli.curtail import curtail_app
from gateway.cli.devices import devices_app, profiles_app
from gateway.cli.energy import energy_app
from gateway.cli.gateway_cmds import config_app, demo_command, inventory_app, run_command, status_command
from gateway.cli.invoices import assign_command, invoices_app, settle_command
from gateway.cli.reconcile import reconcile_app
from gateway.cli.scan import scan_command
from gateway.cli.simulate import simulate_app
from gateway.cli.tariffs import prices_app, tariff_app
from gateway.cli.verify import site_key_command, verify_command

app = typer.Typer(
    name="hashinsight",
    help="HashInsight Edge: run and inspect a mining site's gateway.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.command("demo", short_help="Run a simulated site and a real gateway reading it (the main job).")(
    demo_command
)
app.command("run", short_help="Run the gateway daemon (site.toml).")(run_command)
app.command("status", short_help="Fleet summary from a running gateway.")(status_command)
app.add_typer(config_app, name="config")
app.add_typer(inventory_app, name="inventory")
app.add_typer(devices_app, name="devices")
app.add_typer(profiles_app, name="profiles")
app.add_typer(simulate_app, name="simulate", short_help="Serve virtual miners; inject faults and quirks.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(curtail_app, name="curtail")
app.command("scan", short_help="Find and identify miners on a network.")(scan_command)
app.add_typer(tariff_app, name="tariff", short_help="Import, show and activate tariffs.")
app.add_typer(prices_app, name="prices", short_help="Import market prices for real-time tariffs.")
app.command("assign", short_help="Change which customer owns miners, from an instant.")(assign_command)
app.command("settle", short_help="Settle a month into invoice drafts with signed evidence.")(settle_command)
app.add_typer(invoices_app, name="invoices", short_help="Show or export a settled month's drafts.")
app.command("verify", short_help="Check signed evidence or a dispute package, offline.")(verify_command)
app.command("site-key", short_help="The site's public key, for verify --trusted-key.")(site_key_command)
app.add_typer(reconcile_app, name="reconcile", short_help="Meter or pool CSV vs our figures; open disputes.")
app.add_typer(energy_app, name="energy", short_help="Site kWh, coverage, cost, peak kW, CO2 per hour/day.")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `hashinsight ... | head` is not an error
        sys.stderr.close()
