"""The repair step against every JSON quirk listed in protocols.md, and a fuzz test: no input crashes it."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.devices.jsonrepair import JsonRepairError, RepairReport, loads
from tests.devices.capture import FIXTURES


def test_valid_json_takes_the_fast_path_without_repairs() -> None:
    report = RepairReport()
    assert loads(b'{"STATUS":[{"STATUS":"S"}],"id":1}', report) == {"STATUS": [{"STATUS": "S"}], "id": 1}
    assert report.fixes == []


def test_real_s9_capture_with_concatenated_objects() -> None:
    """S9 bmminer `stats` emits `}{` between its two STATS entries: invalid as the firmware sent it."""
    raw = (FIXTURES / "antminer" / "s9_bmminer_stats.json").read_bytes()
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    report = RepairReport()
    data = loads(raw + b"\x00", report)
    assert [entry.get("ID") for entry in data["STATS"]] == [None, "BC50"]
    assert data["STATS"][0]["Type"] == "Antminer S9\nV1.3.58"
    assert "'}{' between objects" in report.fixes


@pytest.mark.parametrize(
    ("raw", "expected", "fix"),
    [
        (b'{"a":1}\x00', {"a": 1}, None),  # the NUL terminator every CGMiner reply carries
        (b'{"STATS":[{"a":1}{"b":2}]}', {"STATS": [{"a": 1}, {"b": 2}]}, "'}{' between objects"),
        (b'{"a":1,}', {"a": 1}, "trailing comma before '}'"),
        (b'{"a":[1,2,]}', {"a": [1, 2]}, "trailing comma before ']'"),
        (b'{"DEVS":[,{"a":1}]}', {"DEVS": [{"a": 1}]}, "leading or doubled comma"),
        (b'{"a":1,,"b":2}', {"a": 1, "b": 2}, "leading or doubled comma"),
        (b'{"Type":"Antminer S9\nV1.3.58"}', {"Type": "Antminer S9\nV1.3.58"}, None),  # raw newline
        (b'{\n"a":\n1\r\n}\n', {"a": 1}, None),  # stray newlines between tokens
        (b'{"a":1 "b":2}', {"a": 1, "b": 2}, "missing comma"),
        (b'{"a":"x"\n"b":[1 2]}', {"a": "x", "b": [1, 2]}, "missing comma"),
        (b'{"t":nan,"u":inf,"v":-inf}', {"t": None, "u": None, "v": None}, "bare nan"),
        (b'{"t":NaN,"u":Infinity}', {"t": None, "u": None}, None),
        (b'{"Msg":"can\\\'t"}', {"Msg": "can't"}, "invalid escape \\'"),
        (b'{"a":"\\\\\'"}', {"a": "\\'"}, None),  # an escaped backslash before a quote is valid
        (b'\n\n  {"a":1}  \n', {"a": 1}, None),  # get_miner_conf.cgi's leading blank lines
    ],
)
def test_quirks(raw: bytes, expected: object, fix: str | None) -> None:
    report = RepairReport()
    assert loads(raw, report) == expected
    if fix:
        assert fix in report.fixes


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00",
        b'{"a":1',  # truncated: we never close brackets for the firmware
        b'{"a":"unterminated',
        b'{"STATS":[{"a":1},{"b":',
        b"<html><body>401 Unauthorized</body></html>",
        b"garbage",
        b"{}{}",
        b'{"a" 1}',
        b'{1:"a"}',
        b"]",
        b"\xff\xfe\x00\x01" * 10,
    ],
)
def test_unrepairable_input_is_an_error_not_a_guess(raw: bytes) -> None:
    with pytest.raises(JsonRepairError):
        loads(raw)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(JsonRepairError):
        loads(b"[" * 200_000 + b"]" * 200_000)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_valid_json_round_trips(value: object) -> None:
    assert loads(json.dumps(value)) == value


@given(st.binary(max_size=2048))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_arbitrary_bytes_never_crash(data: bytes) -> None:
    with contextlib.suppress(JsonRepairError):
        loads(data)


_CAPTURES = sorted(p.read_bytes() for p in FIXTURES.rglob("*.json"))


@given(st.sampled_from(_CAPTURES), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_real_captures_never_crash(raw: bytes, data: st.DataObject) -> None:
    """Cut, splice and corrupt real replies: the repair step either decodes or says why it cannot."""
    cut = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=16))
    keep = data.draw(st.integers(0, len(raw)))
    mutated = raw[:cut] + junk + raw[keep:]
    with contextlib.suppress(JsonRepairError):
        loads(mutated)
