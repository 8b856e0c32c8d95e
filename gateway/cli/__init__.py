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
app.command("demo")(demo_command)
app.command("run")(run_command)
app.command("status")(status_command)
app.add_typer(config_app, name="config")
app.add_typer(inventory_app, name="inventory")
app.add_typer(devices_app, name="devices")
app.add_typer(profiles_app, name="profiles")
app.add_typer(simulate_app, name="simulate")
app.add_typer(alerts_app, name="alerts")
app.command("scan")(scan_command)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `hashinsight ... | head` is not an error
        sys.stderr.close()
