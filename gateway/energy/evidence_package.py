"""Evidence as it travels: a JSON file with its outputs beside it, or a ZIP package (dispute packages).

A ZIP is read, never extracted: members are looked up by name and hashed as they stream, each under a
size cap counted on the bytes actually inflated (a ZIP bomb's header can lie). A package whose members
could write outside a folder if someone *did* unzip it (absolute paths, `..`, backslashes, drive
letters), or which holds two members of one name, is invalid: we never extract, but the client's unzip
might, and two copies of one name would let two readers see two different documents.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from gateway.energy.evidence import (
    CHUNK_BYTES,
    CONTROL_CHARS,
    EVIDENCE_MEMBER,
    MAX_EVIDENCE_BYTES,
    OutputUnreadable,
    VerifyResult,
    check_evidence,
    invalid,
    show_value,
    verify_evidence,
)

__all__ = ["MAX_ZIP_MEMBERS", "MAX_ZIP_MEMBER_BYTES", "verify_evidence_zip", "verify_file"]

MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_MEMBER_BYTES = 2 * 1024**3  # an output larger than this is not an invoice export
_DRIVE = re.compile(r"[A-Za-z]:")


def verify_file(path: Path, *, trusted_keys: Collection[str] | None = None) -> VerifyResult:
    """An evidence JSON (outputs looked up beside it) or a ZIP package, told apart by its first bytes."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            if head[:2] == b"PK":
                return verify_evidence_zip(path, trusted_keys=trusted_keys)
            data = head + handle.read(MAX_EVIDENCE_BYTES + 1 - len(head))
    except OSError as err:
        return invalid(f"cannot read {path}: {err.strerror or err}")
    return verify_evidence(data, base_dir=path.parent, trusted_keys=trusted_keys)


def verify_evidence_zip(
    path: Path, *, trusted_keys: Collection[str] | None = None, max_member_bytes: int = MAX_ZIP_MEMBER_BYTES
) -> VerifyResult:
    """Check a package: a ZIP holding `evidence.json` (at its root or in one folder) and the outputs
    beside it; inputs of the evidence that are members beside it (e.g. a dispute's received CSV, or
    `inputs/energy_15m.csv`) are checked too. Nothing is extracted; a member with an unsafe path makes
    the package invalid."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return invalid(f"not a readable ZIP: {err}")
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            return invalid(f"the ZIP has {len(infos)} members; the limit is {MAX_ZIP_MEMBERS}")
        problems: list[str] = []
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            problem = _member_problem(info, members, max_member_bytes)
            if problem:
                problems.append(problem)
            members.setdefault(info.filename, info)
        found = [n for n in members if n == EVIDENCE_MEMBER or n.endswith("/" + EVIDENCE_MEMBER)]
        if len(found) != 1:
            where = "none" if not found else ", ".join(show_value(n) for n in found)
            return invalid(f"the ZIP must hold exactly one {EVIDENCE_MEMBER} (found {where})", *problems)
        prefix = found[0][: -len(EVIDENCE_MEMBER)]
        try:
            evidence = _read_member(archive, members[found[0]], MAX_EVIDENCE_BYTES + 1)
        except OutputUnreadable as err:
            return invalid(f"{EVIDENCE_MEMBER}: {err}", *problems)

        def hasher(name: str) -> str | None:
            info = members.get(prefix + name)
            if info is None:
                return None
            digest = hashlib.sha256()
            _read_member(archive, info, max_member_bytes, digest.update)
            return "sha256:" + digest.hexdigest()

        return check_evidence(evidence, hasher, trusted_keys, problems)


def _member_problem(info: zipfile.ZipInfo, seen: Mapping[str, zipfile.ZipInfo], cap: int) -> str | None:
    name = info.filename
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or ".." in parts or _DRIVE.match(name):
        return f"ZIP member {show_value(name)} has an unsafe path (absolute or '..'); refused"
    if CONTROL_CHARS.search(name):
        return f"ZIP member {show_value(name)} has control characters in its name"
    if name in seen:
        return f"ZIP member {show_value(name)} appears twice (which copy counts is ambiguous)"
    if info.flag_bits & 0x1:
        return f"ZIP member {show_value(name)} is encrypted"
    if info.file_size > cap:
        return f"ZIP member {show_value(name)} is {info.file_size} bytes; the limit is {cap}"
    return None


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, sink: Callable[[bytes], object] | None = None
) -> bytes:
    """A member's bytes (or, with `sink`, fed to it in chunks), never more than `cap` of them, whatever
    its header claims: a ZIP bomb stops at the cap."""
    kept = bytearray()
    total = 0
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(CHUNK_BYTES):
                total += len(chunk)
                if total > cap:
                    raise OutputUnreadable(f"larger than the limit of {cap} bytes")
                if sink is None:
                    kept += chunk
                else:
                    sink(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, zlib.error) as err:
        raise OutputUnreadable(f"damaged or unsupported ZIP data ({err})") from None
    return bytes(kept)
