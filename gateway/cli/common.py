"""What every command shares: one way to fail, and where gateway state lives.

Errors a user can cause end with a one-line message on stderr and exit status 2 (a usage mistake) or
1 (bad input or an unreachable thing); tracebacks are for bugs only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from gateway.config import ConfigError, Settings, load_settings

ENV_DATA_DIR = "HASHINSIGHT_DATA_DIR"
DEFAULT_DATA_DIR = (
    Path("/var/lib/hashinsight") if os.geteuid() == 0 else Path.home() / ".local/share/hashinsight"
)


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=ENV_DATA_DIR,
        help=f"Gateway state directory (databases, keys). Default: {DEFAULT_DATA_DIR}.",
        show_default=False,
    ),
]


SiteConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="HASHINSIGHT_CONFIG", help="Site configuration (TOML): zone, [energy]."
    ),
]


def site_settings(config: Path | None) -> Settings:
    """The site's settings for the energy and reconciliation commands. Miner credentials play no part
    there, so the factory-password check (which guards polling a real site) must not stop them."""
    try:
        return load_settings(config, demo=True)
    except ConfigError as err:
        fail(str(err), 2)


def read_input(path: Path, max_bytes: int) -> bytes:
    """A user's input file, whole, refused (one line, no traceback) when missing, a directory, unreadable
    or larger than `max_bytes`."""
    try:
        if path.stat().st_size > max_bytes:
            fail(f"{path}: larger than {max_bytes // (1024 * 1024)} MiB; refusing to read it")
        return path.read_bytes()
    except FileNotFoundError:
        fail(f"{path}: no such file", 2)
    except IsADirectoryError:
        fail(f"{path}: is a directory", 2)
    except OSError as err:
        fail(f"{path}: cannot read: {err.strerror or err}")


def data_dir(option: Path | None) -> Path:
    """The state directory, created (mode 0700: it holds keys and credentials) if missing."""
    path = (option or DEFAULT_DATA_DIR).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        fail(f"cannot use data directory {path}: {err.strerror or err}")
    return path
