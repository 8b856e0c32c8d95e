"""gateway.site_key on a real filesystem: created once with the right modes, never half written,
never replaced; a damaged key is an error that names the file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.site_key import SiteKeyError, load_or_create_site_key, site_key_path
from shared.signing import SigningKey, verify_signature


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_the_key_with_private_modes(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask would leave 0755/0644 if the code relied on it
    try:
        key = load_or_create_site_key(tmp_path / "data")
    finally:
        os.umask(old_umask)
    path = site_key_path(tmp_path / "data")
    assert path == tmp_path / "data" / "keys" / "site_ed25519.pem"
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["site_ed25519.pem"]  # no temporary file left behind
    assert SigningKey.from_pem(path.read_bytes()).public_key_b64 == key.public_key_b64


def test_later_runs_load_the_same_key(tmp_path: Path) -> None:
    first = load_or_create_site_key(tmp_path)
    before = site_key_path(tmp_path).read_bytes()
    second = load_or_create_site_key(tmp_path)
    assert second.key_id == first.key_id
    assert verify_signature(first.public_key_b64, b"x", second.sign(b"x"))
    assert site_key_path(tmp_path).read_bytes() == before


def test_processes_racing_at_first_start_all_end_with_one_key(tmp_path: Path) -> None:
    """Each process creates a key and links it into place; the losers must load the winner's key
    instead of overwriting it (a rename would let two processes sign with two keys)."""
    script = (
        "import sys; from pathlib import Path; from gateway.site_key import load_or_create_site_key; "
        "print(load_or_create_site_key(Path(sys.argv[1])).key_id)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    ids = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert ids == {load_or_create_site_key(tmp_path).key_id}
    assert [p.name for p in site_key_path(tmp_path).parent.iterdir()] == ["site_ed25519.pem"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "is unusable"),
        (b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI", "is unusable"),
        (b"\x00\xff" * 40, "is unusable"),
        (b"x" * 20_000, "far too large"),
    ],
)
def test_a_corrupt_key_is_an_error_and_is_never_replaced(tmp_path: Path, content: bytes, says: str) -> None:
    path = site_key_path(tmp_path)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(SiteKeyError, match=says) as caught:
        load_or_create_site_key(tmp_path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == content


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_site_key(tmp_path)
    path = site_key_path(tmp_path)
    path.chmod(0o644)
    with pytest.raises(SiteKeyError, match=r"accessible to other users \(mode 0644\).*chmod 600"):
        load_or_create_site_key(tmp_path)
    path.chmod(0o600)
    load_or_create_site_key(tmp_path)


def test_something_else_at_the_keys_path_is_an_error(tmp_path: Path) -> None:
    path = site_key_path(tmp_path)
    path.mkdir(parents=True)
    with pytest.raises(SiteKeyError, match="not a regular file"):
        load_or_create_site_key(tmp_path)
    path.rmdir()
    os.mkfifo(path, 0o600)  # must not hang at open
    with pytest.raises(SiteKeyError, match="not a regular file"):
        load_or_create_site_key(tmp_path)


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(SiteKeyError, match=r"cannot read the site key .*Not a directory"):
        load_or_create_site_key(tmp_path / "file")
