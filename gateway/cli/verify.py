"""`hashinsight verify FILE`: check an export's signed evidence offline (a thin shell over
gateway.energy.evidence_package). Exit 0 valid, 1 invalid (each problem printed), 2 usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import DataDirOption, data_dir, fail
from gateway.energy.evidence_package import verify_file
from gateway.site_key import SiteKeyError, load_or_create_site_key
from shared.signing import key_id_of


def verify_command(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            metavar="FILE",
            help="An evidence JSON (its output files are looked up in the same folder) or a ZIP package "
            "holding evidence.json and the outputs.",
            show_default=False,
        ),
    ],
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            metavar="B64",
            help="A public key you trust (standard base64 of the 32-byte Ed25519 key, as the site "
            "publishes it). Repeat for several. Without one, only self-consistency is checked.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify signed evidence: the Ed25519 signature over its canonical JSON, that its key id matches
    its key, and that every output file (invoice CSV, report...) still has the SHA-256 it was signed
    with. A tampered file is named. Works offline, on any copy.

    Example: `hashinsight verify invoice-2024-05/evidence.json --trusted-key 'pqGy...65xA='`
    or `hashinsight verify dispute-2024-05.zip`."""
    for text in trusted_key or ():
        try:
            key_id_of(text)
        except ValueError:
            fail(f"--trusted-key {text[:24]!r} is not a base64 Ed25519 public key (32 bytes)", 2)
    result = verify_file(file, trusted_keys=trusted_key or None)
    if as_json:
        report = {
            "file": str(file),
            "ok": result.ok,
            "key_id": result.key_id,
            "trusted_keys_checked": bool(trusted_key),
            "checked_files": list(result.checked_files),
            "checked_inputs": list(result.checked_inputs),
            "inputs_not_present": list(result.absent_inputs),
            "problems": list(result.problems),
        }
        typer.echo(json.dumps(report, indent=2, ensure_ascii=True))
    else:
        typer.echo(f"{'VALID' if result.ok else 'INVALID'}: {file}")
        if result.key_id is not None:
            if not trusted_key:
                trust = "not checked against a trusted key; pass --trusted-key to prove who signed"
            else:
                trust = "a trusted key" if result.ok else "see problems"
            typer.echo(f"  signed by {result.key_id} ({trust})")
        for name in result.checked_files:
            typer.echo(f"  output {name!r}: OK")
        for name in result.checked_inputs:
            typer.echo(f"  input {name!r}: OK")
        for name in result.absent_inputs:
            typer.echo(f"  input {name!r}: not present, not checked")
        for problem in result.problems:
            typer.echo(f"  problem: {problem}")
    if not result.ok:
        raise typer.Exit(1)


def site_key_command(data: DataDirOption = None) -> None:
    """Print this site's public key and key id: what clients pass to `hashinsight verify --trusted-key`
    to prove an export came from this site. The key is created at first use; its private half never
    leaves the data directory."""
    try:
        key = load_or_create_site_key(data_dir(data))
    except SiteKeyError as err:
        fail(str(err))
    typer.echo(f"key id:     {key.key_id}")
    typer.echo(f"public key: {key.public_key_b64}")
