"""btminer's write-API cryptography, shared by our driver and by the simulator that plays the miner.

API v2 (TCP 4028; Whatsminer API V2.0.x doc, protocols.md §3):
* `get_token` answers `Msg {time, salt, newsalt}`. `salt` is the salt of the miner's stored admin
  password hash; `newsalt` and `time` change with every token.
* key  = the hash part of md5crypt(admin password, salt), i.e. what `openssl passwd -1 -salt SALT PW`
  prints after its third `$`;
* sign = the hash part of md5crypt(key + time, newsalt) - the token the command carries;
* AES key = sha256(key) (32 bytes); a privileged command is the JSON object with `"token": sign`,
  zero-padded to a multiple of 16 bytes, AES-256-ECB encrypted and base64 encoded, sent as
  `{"enc": 1, "data": "<base64>"}`. The miner answers `{"enc": "<base64>"}` encrypted the same way.
  ECB with a password-derived key is weak; it is the firmware's protocol, not our choice.

API v3 (TCP 4433; apidoc.whatsminer.com): a `set.*` command carries `ts` (epoch seconds), `account`
and `token` = the first 8 characters of base64(sha256(cmd + password + salt + ts)), where `salt` comes
from `get.device.info` (param "salt").

md5crypt is implemented here from its published description (Poul-Henning Kamp's FreeBSD
algorithm, "$1$"), so the gateway needs no extra dependency for it; the tests compare it with passlib.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAGIC = b"$1$"
_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# md5crypt's output order: byte triples of the final digest, then its 12th byte alone.
_TRIPLES = ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
_ROUNDS = 1000
_BLOCK = 16


class CryptoError(ValueError):
    """A payload that does not decrypt to JSON with this key (wrong password, corrupt data)."""


def _to64(value: int, count: int) -> str:
    chars = []
    for _ in range(count):
        chars.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(chars)


def md5_crypt(password: str, salt: str) -> str:
    """`$1$<salt>$<22 chars>`; the salt is cut at 8 characters or at a `$`, as crypt(3) does."""
    pw = password.encode()
    salt_bytes = salt.removeprefix("$1$").split("$", 1)[0].encode()[:8]
    alternate = hashlib.md5(pw + salt_bytes + pw).digest()
    context = bytearray(pw + MAGIC + salt_bytes)
    remaining = len(pw)
    while remaining > 0:
        context += alternate[: min(_BLOCK, remaining)]
        remaining -= _BLOCK
    bits = len(pw)
    while bits:
        context += b"\x00" if bits & 1 else pw[:1]
        bits >>= 1
    digest = hashlib.md5(context).digest()
    for index in range(_ROUNDS):
        block = bytearray(pw if index & 1 else digest)
        if index % 3:
            block += salt_bytes
        if index % 7:
            block += pw
        block += digest if index & 1 else pw
        digest = hashlib.md5(block).digest()
    encoded = "".join(_to64((digest[a] << 16) | (digest[b] << 8) | digest[c], 4) for a, b, c in _TRIPLES)
    encoded += _to64(digest[11], 2)
    return f"$1${salt_bytes.decode()}${encoded}"


def crypt_part(password: str, salt: str) -> str:
    """The hash part of md5crypt (after the third `$`): what btminer calls the key and the sign."""
    return md5_crypt(password, salt).split("$")[3]


@dataclass(frozen=True, slots=True)
class V2Token:
    sign: str  # goes into the command as "token"
    aes_key: bytes  # 32 bytes


def v2_token(password: str, salt: str, newsalt: str, time: str) -> V2Token:
    key = crypt_part(password, salt)
    return V2Token(sign=crypt_part(key + time, newsalt), aes_key=v2_aes_key(password, salt))


def v2_aes_key(password: str, salt: str) -> bytes:
    return hashlib.sha256(crypt_part(password, salt).encode()).digest()


def encrypt(aes_key: bytes, payload: Mapping[str, Any]) -> str:
    """JSON, zero-padded to the AES block, AES-256-ECB, base64 (one line)."""
    plain = json.dumps(payload, separators=(",", ":")).encode()
    plain += b"\x00" * (-len(plain) % _BLOCK)
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # ECB: the firmware's protocol
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(aes_key: bytes, data: str) -> Any:
    """The JSON inside an `enc` payload; CryptoError when it is not base64, not whole blocks, or does
    not decrypt to JSON (which is what a wrong password looks like)."""
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as err:
        raise CryptoError(f"not base64: {err}") from err
    if not raw or len(raw) % _BLOCK:
        raise CryptoError(f"{len(raw)} bytes is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()  # ECB: the firmware's protocol
    plain = (decryptor.update(raw) + decryptor.finalize()).rstrip(b"\x00")
    try:
        return json.loads(plain.decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise CryptoError("does not decrypt to JSON (wrong password?)") from err


def v3_token(command: str, password: str, salt: str, ts: int) -> str:
    digest = hashlib.sha256(f"{command}{password}{salt}{ts}".encode()).digest()
    return base64.b64encode(digest).decode()[:8]
