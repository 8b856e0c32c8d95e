"""shared.signing: RFC 8032 vectors, strict text forms, and that verification never raises."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.signing import SigningKey, key_id_of, verify_signature

# RFC 8032 section 7.1, TEST 1 and TEST 2.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        b"",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        b"\x72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]
KEY = SigningKey.generate()
OTHER = SigningKey.generate()


def b64(hex_text: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_text)).decode()


def pem_of(secret_hex: str) -> bytes:
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret_hex))
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(secret: str, public: str, message: bytes, signature: str) -> None:
    key = SigningKey.from_pem(pem_of(secret))
    assert key.public_key_b64 == b64(public)
    assert key.sign(message) == b64(signature)
    assert verify_signature(b64(public), message, b64(signature))
    assert not verify_signature(b64(public), message + b"x", b64(signature))


def test_key_id_is_a_prefix_of_the_public_keys_sha256() -> None:
    # sha256(d75a9801...511a) = 21fe31dfa154a261...
    assert key_id_of(b64(RFC8032[0][1])) == "ed25519:21fe31dfa154a261"
    assert KEY.key_id == key_id_of(KEY.public_key_b64)
    assert len(KEY.key_id) == len("ed25519:") + 16


SMALL_ORDER = [  # the encodings of points whose order divides 8 (and one non-canonical y)
    "00" * 32,
    "01" + "00" * 31,
    "ec" + "ff" * 30 + "7f",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ee" + "ff" * 30 + "7f",  # y = p + 1
]


@pytest.mark.parametrize(
    "bad", ["", "abc", b64("00" * 31), b64("00" * 33), b64(RFC8032[0][1])[:-1], *map(b64, SMALL_ORDER)]
)
def test_key_id_of_refuses_what_is_not_a_key(bad: str) -> None:
    with pytest.raises(ValueError, match="not an Ed25519 public key"):
        key_id_of(bad)


def test_pem_round_trip_and_the_private_key_never_shows() -> None:
    pem = KEY.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = SigningKey.from_pem(pem)
    assert again.public_key_b64 == KEY.public_key_b64
    assert again.sign(b"x") == KEY.sign(b"x")  # Ed25519 is deterministic
    secret_b64 = pem.split(b"\n")[1].decode()
    for text in (repr(KEY), str(KEY), f"{KEY}"):
        assert KEY.key_id in text and secret_b64 not in text and "PRIVATE" not in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(KEY)
    with pytest.raises(TypeError):
        copy.deepcopy(KEY)


def test_from_pem_refusals_say_why_without_key_material() -> None:
    cases = [
        (b"", "not a readable PEM"),
        (b"garbage", "not a readable PEM"),
        (KEY.to_pem()[:70], "not a readable PEM"),
        (b"A" * 100_000, "small unencrypted PKCS8 PEM"),
        (
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            ),
            "encrypted",
        ),
        (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "not an Ed25519 key",
        ),
    ]
    for pem, says in cases:
        with pytest.raises(ValueError, match=says) as caught:
            SigningKey.from_pem(pem)
        assert "\n" not in str(caught.value)


def test_signature_from_another_key_or_over_other_data_fails() -> None:
    signature = KEY.sign(b"invoice")
    assert verify_signature(KEY.public_key_b64, b"invoice", signature)
    assert not verify_signature(OTHER.public_key_b64, b"invoice", signature)
    assert not verify_signature(KEY.public_key_b64, b"invoicf", signature)
    assert not verify_signature(KEY.public_key_b64, b"invoice", OTHER.sign(b"invoice"))


def test_only_the_canonical_base64_spelling_verifies() -> None:
    signature = KEY.sign(b"x")
    raw = base64.b64decode(signature)
    last = signature[-3]  # 64 bytes -> 86 significant chars + "=="; the last char carries 2 spare bits
    spare = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = signature[:-3] + spare[spare.index(last) ^ 1] + "=="  # flips a spare bit: same bytes
    assert base64.b64decode(twin) == raw and twin != signature
    assert not verify_signature(KEY.public_key_b64, b"x", twin)
    for bad in (signature.rstrip("="), " " + signature, signature + "\n", signature.replace("+", "-")):
        if bad != signature:
            assert not verify_signature(KEY.public_key_b64, b"x", bad)


@pytest.mark.parametrize(
    ("key", "data", "signature"),
    [
        (None, b"x", "y"),
        ("", b"", ""),
        ("é" * 44, b"x", "é" * 88),
        (KEY.public_key_b64, "text not bytes", KEY.sign(b"x")),
        (b64("00" * 32), b"x", b64("00" * 64)),  # small-order key: OpenSSL alone would say True
        (b64("01" + "00" * 31), b"x", b64("01" + "00" * 63)),  # the identity, R = identity, S = 0
        (b64("ff" * 32), b"x", KEY.sign(b"x")),  # not a curve point
    ],
)
def test_verify_never_raises(key: object, data: object, signature: object) -> None:
    assert verify_signature(key, data, signature) is False  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=512), flip=st.integers(min_value=0))
def test_sign_verify_and_any_one_bit_change_breaks_it(data: bytes, flip: int) -> None:
    signature = KEY.sign(data)
    assert verify_signature(KEY.public_key_b64, data, signature)
    if data:
        bit = flip % (len(data) * 8)
        changed = bytearray(data)
        changed[bit // 8] ^= 1 << (bit % 8)
        assert not verify_signature(KEY.public_key_b64, bytes(changed), signature)
    raw = bytearray(base64.b64decode(signature))
    raw[flip % 64] ^= 1 << (flip % 8)
    assert not verify_signature(KEY.public_key_b64, data, base64.b64encode(raw).decode())


@settings(max_examples=100, deadline=None)
@given(key=st.text(max_size=100), signature=st.text(max_size=120), data=st.binary(max_size=64))
def test_verify_never_raises_on_arbitrary_text(key: str, signature: str, data: bytes) -> None:
    assert verify_signature(key, data, signature) in (True, False)
