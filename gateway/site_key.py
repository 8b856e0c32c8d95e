"""The site's Ed25519 signing key: `<data_dir>/keys/site_ed25519.pem`, made on first use, then kept.

Why so careful with one small file:
- It is the site's identity. Records, evidence files and dispute packages signed with it name its key
  id, and the cloud and clients trust exactly that key. A key silently replaced would make every later
  signature look forged and every earlier one unverifiable against the new key, so a file that exists
  but cannot be read as a key is an error to fix (restore the backup), never a reason to make a new one.
- It is a secret: the file is mode 0600 in a 0700 directory, and a file others can read is refused
  (as ssh does), because a key anyone could have copied proves nothing.
- It must never be half written. The PEM goes to a temporary file in the same directory, is fsynced,
  and is then hard-linked into place (rename's atomicity without its overwrite: if two processes start
  at once, the second link fails, and that process loads the winner's key instead of replacing it);
  the directory is fsynced so the new name survives a power cut.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from shared.signing import SigningKey

__all__ = ["KEY_FILE_NAME", "SiteKeyError", "load_or_create_site_key", "site_key_path"]

KEY_FILE_NAME = "site_ed25519.pem"
_MAX_KEY_FILE_BYTES = 16 * 1024
# Filesystems that cannot hard-link (some FUSE and network mounts) fall back to a checked rename.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class SiteKeyError(RuntimeError):
    """The site key exists but cannot be used, or cannot be created; the message says what to do."""


def site_key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / KEY_FILE_NAME


def load_or_create_site_key(data_dir: Path) -> SigningKey:
    """The site's signing key, created (mode 0600, directory 0700, atomically) if there is none yet."""
    path = site_key_path(data_dir)
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = SigningKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.parent.chmod(0o700)  # mkdir's mode is filtered by the umask; the key dir is ours alone
        created = _create_exclusive(path, key.to_pem())
    except OSError as err:
        raise SiteKeyError(f"cannot create the site key in {path.parent}: {err.strerror or err}") from None
    return key if created else _load(path)


def _load(path: Path) -> SigningKey:
    """Read and check an existing key file. FileNotFoundError (only) means there is none yet."""
    try:
        # O_NONBLOCK: a FIFO planted at the key's path must not hang the gateway at open.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise SiteKeyError(f"cannot read the site key {path}: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SiteKeyError(
                f"the site key {path} is not a regular file; move it aside and restore the key"
            )
        if info.st_mode & 0o077:
            raise SiteKeyError(
                f"the site key {path} is accessible to other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}` if it has not leaked, or retire the key if it may have"
            )
        if info.st_size > _MAX_KEY_FILE_BYTES:
            raise SiteKeyError(f"the site key {path} is {info.st_size} bytes, far too large to be a key")
        pem = b""
        while chunk := os.read(fd, _MAX_KEY_FILE_BYTES + 1 - len(pem)):
            pem += chunk
    except OSError as err:
        raise SiteKeyError(f"cannot read the site key {path}: {err.strerror or err}") from None
    finally:
        os.close(fd)
    try:
        return SigningKey.from_pem(pem)
    except ValueError as err:
        raise SiteKeyError(
            f"the site key {path} is unusable ({err}); restore it from backup. It is never replaced "
            "automatically: what was signed with it names its key id"
        ) from None


def _create_exclusive(path: Path, pem: bytes) -> bool:
    """Put `pem` at `path` atomically; False if another process put a key there first."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            created = True
        except FileExistsError:
            created = False
        except OSError as err:
            if err.errno not in _NO_LINK_ERRNOS:
                raise
            created = not path.exists()
            if created:
                tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return created


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
