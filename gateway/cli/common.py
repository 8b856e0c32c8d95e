"""What every command shares: one way to fail, and where gateway state lives.

Errors a user can cause end with a one-line message on stderr and exit status 2 (a usage mistake) or
1 (bad input or an unreachable thing); tracebacks are for bugs only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, NoReturn

import typer

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


def data_dir(option: Path | None) -> Path:
    """The state directory, created (mode 0700: it holds keys and credentials) if missing."""
    path = (option or DEFAULT_DATA_DIR).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        fail(f"cannot use data directory {path}: {err.strerror or err}")
    return path
