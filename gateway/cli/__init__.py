"""The `hashinsight` command: a thin shell over the library. Each group lives in its own module."""

from __future__ import annotations

import sys

import typer

from gateway.cli.alerts import alerts_app
from gateway.cli.devices import devices_app, profiles_app
from gateway.cli.gateway_cmds import config_app, demo_command, inventory_app, run_command, status_command
from gateway.cli.scan import scan_command
from gateway.cli.simulate import simulate_app

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
app.command("scan", short_help="Find and identify miners on a network.")(scan_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `hashinsight ... | head` is not an error
        sys.stderr.close()
