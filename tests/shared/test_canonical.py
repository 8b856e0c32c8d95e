"""shared.canonical: RFC 8785 bytes (the RFC's own examples and Appendix B), what it refuses, and the
properties a signature relies on (same value -> same bytes, whatever the key order; parse -> same bytes)."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canonical import MAX_SAFE_INTEGER, canonical_json, content_hash, parse_json, sha256_hex


def from_ieee(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


@pytest.mark.parametrize(
    ("bits", "text"),
    [  # RFC 8785 Appendix B, verbatim
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_numbers_as_rfc8785_appendix_b(bits: str, text: str) -> None:
    assert canonical_json(from_ieee(bits)) == text.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_are_refused(bits: str) -> None:
    with pytest.raises(ValueError, match="not canonical JSON"):
        canonical_json({"x": from_ieee(bits)})


def test_the_rfc_example_object() -> None:
    """RFC 8785 section 3.2.2: whitespace gone, numbers rewritten, strings escaped minimally."""
    parsed = json.loads(
        '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n'
        '  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n'
        '  "literals": [null, true, false]\n}'
    )
    assert (
        canonical_json(parsed)
        == (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        ).encode()
    )


def test_keys_sort_by_utf16_code_units_as_in_rfc_section_3_2_3() -> None:
    """The emoji (U+1F600) is the surrogate pair D83D DE00 in UTF-16, so it sorts *before* U+FB33,
    although a code-point sort would put it last."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert (
        canonical_json(value)
        == (
            '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
            '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
            '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
        ).encode()
    )


def test_nesting_and_literals() -> None:
    assert (
        canonical_json({"b": [1, {"d": None, "c": True}], "a": ""}) == b'{"a":"","b":[1,{"c":true,"d":null}]}'
    )
    assert canonical_json(("x", -0.0, 2.5)) == b'["x",0,2.5]'


def test_the_integer_boundary() -> None:
    assert canonical_json(MAX_SAFE_INTEGER) == b"9007199254740991"
    assert canonical_json(-MAX_SAFE_INTEGER) == b"-9007199254740991"
    for bad in (MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 10**30, 10**5000):
        with pytest.raises(ValueError, match="send it as a string"):
            canonical_json({"energy_j": bad})


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (Decimal("1.10"), "Decimals as strings"),
        ({1: "x"}, "keys must be strings"),
        (b"bytes", "unsupported type"),
        (object(), "unsupported type"),
        ("\ud800", "non-UTF-8"),
        ({1, 2}, "unsupported type"),
    ],
)
def test_what_json_cannot_carry_is_refused_with_one_line(bad: object, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        canonical_json(["ok", bad])
    assert "\n" not in str(caught.value)


def test_deep_nesting_is_a_value_error_not_a_crash() -> None:
    value: list[Any] = []
    for _ in range(50_000):
        value = [value]
    with pytest.raises(ValueError, match="nested too deeply"):
        canonical_json(value)


def test_hashes() -> None:
    assert sha256_hex(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert content_hash({"b": 1, "a": 2}) == sha256_hex(b'{"a":2,"b":1}')


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=16,
)


@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_parsing_canonical_bytes_gives_the_value_and_the_same_bytes(value: Any) -> None:
    data = canonical_json(value)
    parsed = parse_json(data)
    assert canonical_json(parsed) == data
    assert parsed == value  # numerically: 1.0 is written "1" and -0.0 "0", as RFC 8785 says


@settings(max_examples=100, deadline=None)
@given(items=st.dictionaries(st.text(max_size=6), json_scalars, max_size=8), data=st.data())
def test_key_order_never_changes_the_bytes(items: dict[str, Any], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(list(items.items())))
    assert canonical_json(dict(shuffled)) == canonical_json(items)
    assert content_hash(dict(shuffled)) == content_hash(items)


@settings(max_examples=100, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_double_round_trips(number: float) -> None:
    assert float(json.loads(canonical_json(number))) == number


def test_parse_json_reads_numbers_as_doubles_and_refuses_ambiguity() -> None:
    assert parse_json(b"[9007199254740991, 9007199254740992, 1e400, 1.0]") == [
        9007199254740991,
        9007199254740992.0,
        float("inf"),
        1,
    ]
    assert type(parse_json("9007199254740992")) is float
    assert type(parse_json("-12")) is int
    assert (
        canonical_json(parse_json(canonical_json(2.0**60))) == b"1152921504606847000"
    )  # ECMAScript: shortest digits, then zeros
    for bad, says in [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("[NaN]", "NaN is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ("[" * 100_000, "nested too deeply"),
        ('{"a": ', "Expecting value"),
    ]:
        with pytest.raises(ValueError, match=says):
            parse_json(bad)
