"""The evidence file that travels with every export: what went in, what came out, signed by the site.

A client must be able to check an invoice offline, years later, with nothing but the files and a
public key. So the evidence is one self-contained JSON document (RFC 8785 canonical form):

    {"kind": "hashinsight.evidence", "v": 1, "subject": ..., "site_id": ..., "period": {...},
     "generated_at": <UTC epoch s>, "inputs": [{"name", "sha256", "size_bytes", "description"}, ...],
     "outputs": {"<file name>": "sha256:<hex>", ...}, "notice": ..., "public_key": <base64, 32 bytes>,
     "key_id": "ed25519:<16 hex>", "signature": <base64, 64 bytes>}

The signature is Ed25519 over the canonical JSON of the document *without* "signature", so any JCS
implementation reproduces the signed bytes, and a reformatted (pretty-printed) copy still verifies.
Inputs are hashes, not copies: a meter CSV or a settlement record stays where it is, and whoever holds
it can show it is the one used. Outputs are files that sit beside the evidence (or beside it in a
ZIP); their names are plain file names, so checking them can never reach outside that folder.
An input *may* travel too (a revision's `inputs/energy_15m.csv`, a dispute ZIP's received CSV): when a
file of its name is beside the evidence it must match, or a changed meter row would pass unnoticed;
when it is absent the result says so ("not present, not checked"), since absence is by design. Input
names are therefore safe relative paths of at most one folder ("inputs/fees.json"), and a lookup that
resolves outside the evidence's folder (a symlink) is refused rather than followed.

Verifying never raises on hostile input: every problem found is listed, in words naming the field or
file, and a valid result says which key signed. A self-consistent signature proves only that *some*
key signed; pass the site's published key(s) as `trusted_keys` to prove that *the site* did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.canonical import MAX_SAFE_INTEGER, canonical_json, parse_json, sha256_hex
from shared.signing import SigningKey, key_id_of, public_key_bytes, verify_signature

__all__ = [
    "CHUNK_BYTES",
    "CONTROL_CHARS",
    "EVIDENCE_MEMBER",
    "KIND",
    "MAX_EVIDENCE_BYTES",
    "EvidenceInput",
    "Hasher",
    "OutputUnreadable",
    "VerifyResult",
    "build_evidence",
    "check_evidence",
    "input_from_bytes",
    "input_from_record",
    "input_name_problem",
    "invalid",
    "name_problem",
    "show_value",
    "verify_evidence",
]

KIND = "hashinsight.evidence"
VERSION = 1
EVIDENCE_MEMBER = "evidence.json"
MAX_EVIDENCE_BYTES = 16 * 1024 * 1024
_MAX_ENTRIES = 100_000  # inputs or outputs in one document
_MAX_TEXT = 4096
_MAX_PROBLEMS = 50
CHUNK_BYTES = 1024 * 1024
_FIELDS = frozenset(
    {"kind", "v", "subject", "site_id", "period", "generated_at", "inputs", "outputs", "notice"}
    | {"public_key", "key_id", "signature"}
)
_INPUT_FIELDS = frozenset({"name", "sha256", "size_bytes", "description"})
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Characters no portable file name has: separators, Windows-reserved ones, and control characters.
_BAD_NAME = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
# One component of an input's name: plain characters only, starting and ending with a letter, digit or
# underscore, so no component is "." or "..", hidden, or a name Windows would silently trim.
_INPUT_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.,+=@() -]{0,253}[A-Za-z0-9_)])?")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceInput:
    """One input of an export: a file (its bytes) or a record (its canonical JSON), by hash."""

    name: str
    sha256: str
    size_bytes: int
    description: str

    def __post_init__(self) -> None:
        problems = _input_problems(self.as_json(), "input")
        if problems:
            raise ValueError(problems[0])

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """`ok` only when `problems` is empty. `key_id` is the signer's (derived from the document's
    public key) when that key is well formed; `checked_files` are the outputs found and matching,
    `checked_inputs` the inputs found beside the evidence and matching, `absent_inputs` those not
    present there (fine: inputs are hashes; but then nobody checked them, and the output says so)."""

    ok: bool
    problems: tuple[str, ...]
    key_id: str | None
    checked_files: tuple[str, ...]
    checked_inputs: tuple[str, ...] = ()
    absent_inputs: tuple[str, ...] = ()


def input_from_bytes(name: str, data: bytes, description: str) -> EvidenceInput:
    return EvidenceInput(name=name, sha256=sha256_hex(data), size_bytes=len(data), description=description)


def input_from_record(name: str, record: object, description: str) -> EvidenceInput:
    """An input that is a value, not a file: hashed as its canonical JSON, so anyone can recompute it."""
    data = canonical_json(record)
    return EvidenceInput(name=name, sha256=sha256_hex(data), size_bytes=len(data), description=description)


def build_evidence(
    *,
    subject: str,
    period: dict[str, object],
    inputs: Sequence[EvidenceInput],
    outputs: Mapping[str, bytes],
    generated_at: int,
    site_id: str,
    key: SigningKey,
    notice: str,
) -> bytes:
    """The signed evidence document, as canonical JSON bytes. ValueError (one line) on bad arguments:
    the same checks `verify_evidence` applies, so what is built here always verifies."""
    names = [item.name for item in inputs]
    if len(set(names)) != len(names):
        raise ValueError("evidence: input names must be unique")
    for name, data in outputs.items():
        if not isinstance(data, bytes | bytearray | memoryview):  # bytes(5) would hash five NULs
            raise ValueError(f"evidence: output {show_value(name)} must be bytes")
    document: dict[str, Any] = {
        "kind": KIND,
        "v": VERSION,
        "subject": subject,
        "site_id": site_id,
        "period": dict(period),
        "generated_at": generated_at,
        "inputs": [item.as_json() for item in inputs],
        "outputs": {name: sha256_hex(bytes(data)) for name, data in outputs.items()},
        "notice": notice,
        "public_key": key.public_key_b64,
        "key_id": key.key_id,
    }
    problems = _document_problems({**document, "signature": ""})
    if problems:
        raise ValueError(f"evidence: {problems[0]}")
    try:
        document["signature"] = key.sign(canonical_json(document))
    except ValueError as err:
        raise ValueError(f"evidence: {err}") from None
    data = canonical_json(document)
    if len(data) > MAX_EVIDENCE_BYTES:
        raise ValueError(f"evidence: {len(data)} bytes exceeds the limit of {MAX_EVIDENCE_BYTES}")
    return data


# --- verification --------------------------------------------------------------------------------------

# A (checked) output or input name -> "sha256:..." or None when absent; OSError/OutputUnreadable when it
# exists but cannot be read (or, on disk, resolves outside the evidence's folder).
Hasher = Callable[[str], str | None]


def verify_evidence(
    evidence_bytes: bytes, *, base_dir: Path | None = None, trusted_keys: Collection[str] | None = None
) -> VerifyResult:
    """Check an evidence document; with `base_dir`, also the output files it names in that directory
    and the input files of its inputs' names that are present there."""
    hasher = None if base_dir is None else (lambda name: _hash_beside(base_dir, name))
    return check_evidence(evidence_bytes, hasher, trusted_keys, [])


class OutputUnreadable(Exception):
    """An output (file or ZIP member) that exists but cannot be read to the end."""


def invalid(*problems: str) -> VerifyResult:
    """A result for evidence that could not even be read."""
    return VerifyResult(ok=False, problems=tuple(problems), key_id=None, checked_files=())


def check_evidence(
    evidence: bytes, hasher: Hasher | None, trusted_keys: Collection[str] | None, problems: list[str]
) -> VerifyResult:
    """The checks behind every entry point: `problems` already found by the caller (e.g. in a ZIP's
    layout) come first; `hasher` looks the outputs up wherever they are (None: outputs not checked)."""
    document, problem = _parse(evidence)
    if document is None:
        return invalid(*problems, problem)
    problems += _document_problems(document)
    key_id: str | None = None
    public_key = document.get("public_key")
    if isinstance(public_key, str) and _key_ok(public_key):
        key_id = key_id_of(public_key)
        problems += _signature_problems(document, public_key, key_id, trusted_keys)
    elif trusted_keys is not None:
        problems.append("the signer cannot be matched to a trusted key: its public key is malformed")
    checked: list[str] = []
    checked_inputs: list[str] = []
    absent: list[str] = []
    if hasher is not None:
        for name, expected in _outputs_to_check(document.get("outputs")):
            status = _compare(hasher, "output", name, expected, problems)
            if status == "missing":
                problems.append(f"output {show_value(name)}: missing (it should sit beside the evidence)")
            elif status == "ok":
                checked.append(name)
        for name, expected in _inputs_to_check(document.get("inputs")):
            status = _compare(hasher, "input", name, expected, problems)
            if status == "missing":
                absent.append(name)
            elif status == "ok":
                checked_inputs.append(name)
    if len(problems) > _MAX_PROBLEMS:
        problems = [*problems[:_MAX_PROBLEMS], f"... and {len(problems) - _MAX_PROBLEMS} more problems"]
    return VerifyResult(
        ok=not problems,
        problems=tuple(problems),
        key_id=key_id,
        checked_files=tuple(checked),
        checked_inputs=tuple(checked_inputs),
        absent_inputs=tuple(absent),
    )


def _outputs_to_check(outputs: object) -> list[tuple[str, str]]:
    """The outputs whose name and hash are well formed (the rest are already reported, and an unsafe
    name is never looked up)."""
    if not isinstance(outputs, dict):
        return []
    return [
        (name, expected)
        for name, expected in sorted(outputs.items())
        if not name_problem(name) and isinstance(expected, str) and _SHA256.fullmatch(expected)
    ]


def _inputs_to_check(inputs: object) -> list[tuple[str, str]]:
    """The inputs whose entry is well formed, unique by name, in document order."""
    if not isinstance(inputs, list) or len(inputs) > _MAX_ENTRIES:
        return []
    out: dict[str, str] = {}
    for item in inputs:
        if isinstance(item, dict) and not _input_problems(item, "input"):
            out.setdefault(item["name"], item["sha256"])
    return list(out.items())


def _compare(hasher: Hasher, what: str, name: str, expected: str, problems: list[str]) -> str:
    """One file looked up by `hasher`: "ok", "missing", or "bad" (a problem was appended)."""
    try:
        actual = hasher(name)
    except (OSError, OutputUnreadable) as err:
        problems.append(f"{what} {show_value(name)}: cannot be read ({err})")
        return "bad"
    if actual is None:
        return "missing"
    if actual != expected:
        problems.append(
            f"{what} {show_value(name)}: content differs from the signed hash "
            f"(file {actual}, evidence {show_value(expected)})"
        )
        return "bad"
    return "ok"


def _parse(evidence: object) -> tuple[dict[str, Any] | None, str]:
    if not isinstance(evidence, bytes | bytearray):
        return None, "evidence must be bytes"
    if len(evidence) > MAX_EVIDENCE_BYTES:
        return None, f"evidence is larger than the limit of {MAX_EVIDENCE_BYTES} bytes"
    try:
        text = bytes(evidence).decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"evidence is not UTF-8 text (byte {err.start})"
    try:
        document = parse_json(text)
    except json.JSONDecodeError as err:
        return None, f"evidence is not JSON: {err.msg} at line {err.lineno} column {err.colno}"
    except RecursionError:
        return None, "evidence is not JSON we accept: nested too deeply"
    except ValueError as err:
        return None, f"evidence is not JSON we accept: {str(err)[:200]}"
    if not isinstance(document, dict):
        return None, f"evidence must be a JSON object, not {type(document).__name__}"
    return document, ""


def _document_problems(doc: dict[str, Any]) -> list[str]:
    problems = [f"missing field {name!r}" for name in sorted(_FIELDS - doc.keys())]
    extra = sorted(doc.keys() - _FIELDS)
    problems += [f"unexpected field {show_value(name)}" for name in extra[:5]]
    if doc.get("kind", KIND) != KIND:
        problems.append(
            f"kind is {show_value(doc['kind'])}, not {KIND!r}: this is not a HashInsight evidence file"
        )
    if "v" in doc and (type(doc["v"]) is not int or doc["v"] != VERSION):
        problems.append(f"v is {show_value(doc['v'])}; this version of HashInsight reads evidence v{VERSION}")
    for name in ("subject", "site_id", "notice"):
        if name in doc and (problem := _text_problem(doc[name], nonempty=True)):
            problems.append(f"{name} {problem}")
    if "period" in doc and not isinstance(doc["period"], dict):
        problems.append("period must be an object")
    stamp = doc.get("generated_at", 0)
    if type(stamp) is not int or not 0 <= stamp <= MAX_SAFE_INTEGER:
        problems.append("generated_at must be a whole number of UTC epoch seconds")
    for name in ("public_key", "key_id", "signature"):
        if name in doc and not isinstance(doc[name], str):
            problems.append(f"{name} must be a string")
    inputs = doc.get("inputs", [])
    if not isinstance(inputs, list) or len(inputs) > _MAX_ENTRIES:
        problems.append(f"inputs must be a list of at most {_MAX_ENTRIES} entries")
    else:
        for index, item in enumerate(inputs, 1):
            problems += _input_problems(item, f"inputs[{index}]")
            if len(problems) > _MAX_PROBLEMS:
                break
    outputs = doc.get("outputs", {})
    if not isinstance(outputs, dict) or len(outputs) > _MAX_ENTRIES:
        problems.append(f"outputs must be an object of at most {_MAX_ENTRIES} file names")
    else:
        for name, value in outputs.items():
            if problem := name_problem(name):
                problems.append(f"output {show_value(name)}: {problem}")
            elif not (isinstance(value, str) and _SHA256.fullmatch(value)):
                problems.append(
                    f"output {show_value(name)}: hash must be 'sha256:' and 64 lowercase hex digits"
                )
            if len(problems) > _MAX_PROBLEMS:
                break
    return problems


def _input_problems(item: object, where: str) -> list[str]:
    if not isinstance(item, dict) or item.keys() != _INPUT_FIELDS:
        return [f"{where} must be an object with exactly {', '.join(sorted(_INPUT_FIELDS))}"]
    problems = []
    for name in ("name", "description"):
        if problem := _text_problem(item[name], nonempty=name == "name"):
            problems.append(f"{where} {name} {problem}")
    if isinstance(item["name"], str) and not problems and (problem := input_name_problem(item["name"])):
        problems.append(f"{where} name {show_value(item['name'])}: {problem}")
    if not (isinstance(item["sha256"], str) and _SHA256.fullmatch(item["sha256"])):
        problems.append(f"{where} sha256 must be 'sha256:' and 64 lowercase hex digits")
    size = item["size_bytes"]
    if type(size) is not int or not 0 <= size <= MAX_SAFE_INTEGER:
        problems.append(f"{where} size_bytes must be a whole number of bytes")
    return problems


def _text_problem(value: object, *, nonempty: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if nonempty and not value.strip():
        return "must not be empty"
    if len(value) > _MAX_TEXT:
        return f"is longer than {_MAX_TEXT} characters"
    if CONTROL_CHARS.search(value):
        return "contains control characters"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an output file name (one plain name, no path), or None if it can."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 255
        or name in {".", ".."}
        or _BAD_NAME.search(name)
    ):
        return "not a plain file name (no folders, separators, control or reserved characters)"
    if name == EVIDENCE_MEMBER:
        return f"{EVIDENCE_MEMBER} is the evidence itself, not an output"
    return None


def input_name_problem(name: str) -> str | None:
    """Why `name` cannot name an input (a safe relative path of at most one folder, plain characters:
    "meter.csv", "inputs/energy_15m.csv"), or None if it can. Checked when building and when verifying,
    so a signed document can never steer a lookup to "../../etc/passwd" or an absolute path."""
    parts = name.split("/") if isinstance(name, str) else []
    if not 1 <= len(parts) <= 2 or not all(_INPUT_PART.fullmatch(part) for part in parts):
        return (
            "not a safe relative file name (at most one folder; letters, digits and . _ - only; "
            "no '..', absolute path or backslash)"
        )
    if name == EVIDENCE_MEMBER:
        return f"{EVIDENCE_MEMBER} is the evidence itself, not an input"
    return None


def _key_ok(public_key: str) -> bool:
    try:
        public_key_bytes(public_key)
    except ValueError:
        return False
    return True


def _signature_problems(
    doc: dict[str, Any], public_key: str, key_id: str, trusted_keys: Collection[str] | None
) -> list[str]:
    problems = []
    if doc.get("key_id") != key_id:
        problems.append(
            f"key_id {show_value(doc.get('key_id'))} does not match the public key (which is {key_id})"
        )
    unsigned = {name: value for name, value in doc.items() if name != "signature"}
    try:
        payload = canonical_json(unsigned)
    except ValueError as err:
        problems.append(f"the document has no canonical form, so no signature can cover it ({err})")
    else:
        signature = doc.get("signature")
        if not (isinstance(signature, str) and verify_signature(public_key, payload, signature)):
            problems.append(
                "signature does not verify: the evidence was changed after signing, or the signature is "
                "another key's"
            )
    if trusted_keys is not None:
        trusted: set[bytes] = set()
        listed = [trusted_keys] if isinstance(trusted_keys, str) else trusted_keys  # one key, not its chars
        for index, text in enumerate(listed, 1):
            if _key_ok(text):
                trusted.add(public_key_bytes(text))
            else:
                problems.append(f"trusted key #{index} is not a base64 Ed25519 public key")
        if public_key_bytes(public_key) not in trusted:
            problems.append(f"signed by {key_id}, which is not one of the trusted keys")
    return problems


def _hash_beside(base_dir: Path, name: str) -> str | None:
    """The hash of `base_dir/name`, never following a symlink (of the file or its folder) outside
    `base_dir`: evidence names what to look at, it must not choose what on this machine gets read."""
    path = base_dir / name
    if not os.path.lexists(path):
        return None
    try:
        root = base_dir.resolve(strict=True)
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return None  # a dangling symlink: nothing is there to check
    except RuntimeError as err:  # a symlink loop
        raise OutputUnreadable(f"symlink loop ({err})") from None
    if not target.is_relative_to(root):
        raise OutputUnreadable("it is a link to somewhere outside the evidence's folder; not followed")
    return _hash_file(target)


def _hash_file(path: Path) -> str | None:
    """The "sha256:<hex>" of a regular file, streamed; None if it does not exist. OutputUnreadable for
    a FIFO, device or directory (opened non-blocking, so a FIFO never hangs us)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputUnreadable("not a regular file")
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK_BYTES):
            digest.update(chunk)
    finally:
        os.close(fd)
    return "sha256:" + digest.hexdigest()


def show_value(value: object) -> str:
    """A value from the document, quoted and cut short, so hostile text cannot steer a terminal."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
