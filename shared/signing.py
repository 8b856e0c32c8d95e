"""Ed25519 signatures over bytes, with keys and signatures carried as standard base64 text.

Why Ed25519: small keys (32 bytes) and signatures (64 bytes) that fit in a JSON field, deterministic
signing (no random nonce to get wrong), and one well-reviewed implementation (`cryptography`).

Text forms are strict: a public key or signature must be the *canonical* standard base64 of exactly 32
or 64 bytes (padding included, no whitespace, no alternative encodings of the same bytes). Anything
else does not verify, so one signature has one spelling and a document cannot be altered by
re-encoding it. A key id (`ed25519:` + 16 hex of the SHA-256 of the raw public key) names a key in
logs and prompts; it is a label, not a trust anchor: trust is always decided on the full public key.

`SigningKey` holds the private half and never shows it: its repr names only the key id, and the PEM
comes out only through an explicit `to_pem()`.

A public key of small order (the identity, the all-zero encoding and the few others) is refused
outright: OpenSSL's Ed25519 accepts it, and with it one fixed signature "verifies" for every message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "SigningKey",
    "key_id_of",
    "public_key_bytes",
    "verify_signature",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
_MAX_PEM_BYTES = 16 * 1024  # an Ed25519 PKCS8 PEM is 119 bytes; anything huge is not one
_P = 2**255 - 19


def _strict_b64(text: str, size: int) -> bytes | None:
    """The bytes `text` encodes if it is the canonical base64 of exactly `size` bytes, else None."""
    if not isinstance(text, str) or len(text) != 4 * ((size + 2) // 3):
        return None
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if len(raw) != size or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _small_order(raw: bytes) -> bool:
    """True for the public keys with which a signature can verify for any message (or that no
    honest key encodes): small-order points and non-canonical y. The point's Montgomery u is fed to
    X25519 with a scalar that is a multiple of 8, which yields zero (refused by OpenSSL: ValueError)
    exactly when the point's order divides 8."""
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:  # non-canonical, or the identity (u would divide by zero)
        return True
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    try:
        X25519PrivateKey.from_private_bytes(bytes(32)).exchange(
            X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))
        )
    except ValueError:
        return True
    return False


def _public_key_raw(public_key_b64: str) -> bytes | None:
    raw = _strict_b64(public_key_b64, PUBLIC_KEY_BYTES)
    return None if raw is None or _small_order(raw) else raw


def public_key_bytes(public_key_b64: str) -> bytes:
    """The raw 32 bytes of a public key in our text form; ValueError naming the problem otherwise."""
    raw = _public_key_raw(public_key_b64)
    if raw is None:
        raise ValueError(
            "not an Ed25519 public key: expected the standard base64 of 32 bytes of a usable key"
        )
    return raw


def key_id_of(public_key_b64: str) -> str:
    """`ed25519:` + the first 16 hex characters of sha256(raw public key). ValueError if not a key."""
    return "ed25519:" + hashlib.sha256(public_key_bytes(public_key_b64)).hexdigest()[:16]


def verify_signature(public_key_b64: str, data: bytes, signature_b64: str) -> bool:
    """True only if `signature_b64` is a valid Ed25519 signature of `data` by that key.

    Never raises: a malformed key, signature or data is simply "does not verify"."""
    if not isinstance(data, bytes | bytearray):
        return False
    raw_key = _public_key_raw(public_key_b64)
    raw_signature = _strict_b64(signature_b64, SIGNATURE_BYTES)
    if raw_key is None or raw_signature is None:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_signature, bytes(data))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


class SigningKey:
    """An Ed25519 private key. Build with `generate()` or `from_pem()`; never printed or logged."""

    __slots__ = ("_private", "_public_b64")

    def __init__(self, private: Ed25519PrivateKey) -> None:
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError("SigningKey wraps an Ed25519PrivateKey; use generate() or from_pem()")
        self._private = private
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._public_b64 = base64.b64encode(raw).decode("ascii")

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS8 PEM Ed25519 private key; ValueError (without key material) otherwise."""
        if not isinstance(pem, bytes | bytearray) or len(pem) > _MAX_PEM_BYTES:
            raise ValueError("not an Ed25519 private key: expected a small unencrypted PKCS8 PEM")
        try:
            private = serialization.load_pem_private_key(bytes(pem), password=None)
        except TypeError:
            raise ValueError("the private key is encrypted; expected an unencrypted PKCS8 PEM") from None
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError("not a readable PEM private key (corrupt or truncated?)") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"the PEM holds a key of type {type(private).__name__}, not an Ed25519 key")
        return cls(private)

    def to_pem(self) -> bytes:
        """PKCS8 PEM, unencrypted: whoever stores it protects it (file mode 0600, see gateway.site_key)."""
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def public_key_b64(self) -> str:
        """The raw 32-byte public key, standard base64."""
        return self._public_b64

    @property
    def key_id(self) -> str:
        return key_id_of(self._public_b64)

    def sign(self, data: bytes) -> str:
        """The Ed25519 signature of `data`, standard base64 (88 characters)."""
        return base64.b64encode(self._private.sign(bytes(data))).decode("ascii")

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        # Pickling would put the private key into whatever store, queue or log receives the pickle.
        raise TypeError("a SigningKey is not picklable; store it with to_pem() where you mean to")
