"""btminer write-API cryptography: our md5crypt against two independent implementations, the v2 token
and AES round trip, and the v3 token."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.whatsminer_auth import (
    CryptoError,
    crypt_part,
    decrypt,
    encrypt,
    md5_crypt,
    v2_aes_key,
    v2_token,
    v3_token,
)

SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_md5_crypt_matches_openssl_passwd() -> None:
    """`openssl passwd -1 -salt abcdefgh admin` (the command the Whatsminer API doc derives the key
    with) printed this on the machine these tests were written on."""
    assert md5_crypt("admin", "abcdefgh") == "$1$abcdefgh$l/LAqC8oJERu7Cmx6trtY/"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl binary")
@pytest.mark.parametrize(("password", "salt"), [("admin", "BQ5hoXV9"), ("s3cret-pw", "jbzkfQls"), ("", "ab")])
def test_md5_crypt_matches_the_openssl_binary(password: str, salt: str) -> None:
    done = subprocess.run(
        ["openssl", "passwd", "-1", "-salt", salt, password], capture_output=True, text=True, check=True
    )
    assert md5_crypt(password, salt) == done.stdout.strip()


@pytest.mark.filterwarnings("ignore:'crypt' is deprecated:DeprecationWarning")
@given(
    password=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F), max_size=40),
    salt=st.text(alphabet=SALT_CHARS, min_size=1, max_size=8),
)
def test_md5_crypt_matches_passlib(password: str, salt: str) -> None:
    reference = pytest.importorskip("passlib.hash").md5_crypt  # pyasic's dependency (dev env)
    assert md5_crypt(password, salt) == reference.using(salt=salt).hash(password)


def test_the_salt_is_cut_like_crypt3() -> None:
    assert md5_crypt("admin", "$1$abcdefghXYZ$ignored") == md5_crypt("admin", "abcdefgh")


def test_v2_token_is_the_documented_derivation() -> None:
    key = crypt_part("admin", "BQ5hoXV9")
    token = v2_token("admin", "BQ5hoXV9", "jbzkfQls", "9422")
    assert token.sign == crypt_part(key + "9422", "jbzkfQls")
    assert token.aes_key == hashlib.sha256(key.encode()).digest() == v2_aes_key("admin", "BQ5hoXV9")
    assert len(token.aes_key) == 32


def test_encrypt_is_zero_padded_aes_blocks_and_round_trips() -> None:
    key = v2_aes_key("admin", "BQ5hoXV9")
    payload = {"cmd": "power_off", "respbefore": "true", "token": "x" * 22}
    data = encrypt(key, payload)
    assert len(base64.b64decode(data)) % 16 == 0
    assert decrypt(key, data) == payload


def test_a_wrong_password_does_not_decrypt() -> None:
    data = encrypt(v2_aes_key("admin", "BQ5hoXV9"), {"cmd": "power_on"})
    with pytest.raises(CryptoError):
        decrypt(v2_aes_key("admin2", "BQ5hoXV9"), data)
    with pytest.raises(CryptoError):
        decrypt(v2_aes_key("admin", "BQ5hoXV9"), "not base64 at all!")
    with pytest.raises(CryptoError):
        decrypt(v2_aes_key("admin", "BQ5hoXV9"), base64.b64encode(b"short").decode())


def test_v3_token_is_the_first_8_chars_of_base64_sha256() -> None:
    digest = hashlib.sha256(b"set.miner.servicesuper5QAHiKMb1700000000").digest()
    assert (
        v3_token("set.miner.service", "super", "5QAHiKMb", 1_700_000_000)
        == (base64.b64encode(digest).decode()[:8])
    )
