"""Decode what miner firmware calls JSON.

CGMiner-family firmwares build their replies with `sprintf`, and it shows: a NUL terminator on every
reply, `}{` between objects (S9 bmminer `stats`), trailing or leading commas (`,}` and `[,{`), raw
newlines inside strings ("Antminer S9\\nV1.3.58"), bare `nan`/`inf` from printf("%f") of a dead sensor,
the invalid escape `\\'`, and missing commas between members. `loads` tries the strict parser first
(almost every reply is valid, and that path costs nothing extra) and only then rebuilds the text token
by token, inserting and dropping separators where the structure makes the intent unambiguous.

What it will not do is invent data: an unterminated string or an unbalanced bracket (a truncated reply)
stays an error, because closing it would turn half a reply into a plausible-looking whole one.
Shape quirks (STATUS as an object, numbers as strings, typo keys) are the parsers' business, not this
module's: here we only turn bytes into Python values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# A string token may be unterminated (truncated reply); the tokenizer then sees a lone `"` as garbage.
_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*|-(?:inf|Infinity|nan)\b)
  | (?P<punct>[{}\[\]:,])
  | (?P<space>[\s\x00]+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_NON_FINITE = {"nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "-nan"}
_LITERALS = {"true", "false", "null"}
_VALID_ESCAPES = frozenset('"\\/bfnrtu')
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class JsonRepairError(ValueError):
    """The text is not JSON and could not be repaired into JSON without guessing."""


@dataclass(slots=True)
class RepairReport:
    """Which repairs a reply needed; kept so a technician can see what the firmware got wrong."""

    fixes: list[str] = field(default_factory=list)

    def add(self, fix: str) -> None:
        if fix not in self.fixes:
            self.fixes.append(fix)


def loads(data: bytes | str, report: RepairReport | None = None) -> Any:
    """Parse a firmware reply, repairing known quirks. Raises JsonRepairError when it cannot."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    stripped = text.strip(" \t\r\n\x00")
    if not stripped:
        raise JsonRepairError("empty reply")
    try:
        # strict=False admits raw control characters inside strings (newlines in "Type").
        return json.loads(stripped, strict=False, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        pass
    report = report if report is not None else RepairReport()
    repaired = _rebuild(stripped, report)
    try:
        return json.loads(repaired, strict=False, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise JsonRepairError(f"not JSON even after repair: {err}") from err


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity; a sensor reporting them has no reading: None.
    return None


def _fix_string(token: str, report: RepairReport) -> str:
    if "\\" not in token:
        return token

    def replace(match: re.Match[str]) -> str:
        char = match.group(1)
        if char in _VALID_ESCAPES:
            return match.group(0)
        report.add(f"invalid escape \\{char}")
        return char if char != '"' else '\\"'

    return _ESCAPE.sub(replace, token)


def _rebuild(text: str, report: RepairReport) -> str:
    """Re-emit the token stream, fixing separators. Raises on anything structural it cannot fix."""
    out: list[str] = []
    stack: list[str] = []  # '{' or '['
    after_value = False  # the last emitted token completed a value (or a key in an object)
    expecting_key = False  # inside an object, after '{' or ',' a key is due
    pending_comma = False  # a comma seen but not yet emitted (dropped if a closer follows)

    def begin_value() -> None:
        nonlocal pending_comma, after_value
        if after_value and stack:
            # Two values side by side: `}{`, or a missing comma between members.
            report.add("missing comma" if out[-1] not in "}]" else "'}{' between objects")
            out.append(",")
        elif pending_comma:
            out.append(",")
        elif after_value and not stack:
            raise JsonRepairError("more than one top-level value")
        pending_comma = False

    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group()
        if kind == "space":
            if "\x00" in token:
                report.add("NUL byte")
            continue
        if kind == "other":
            raise JsonRepairError(f"unexpected character {token!r} at offset {match.start()}")
        if kind == "punct":
            if token in "{[":
                if stack and stack[-1] == "{" and expecting_key:
                    raise JsonRepairError(f"container used as a key at offset {match.start()}")
                begin_value()
                stack.append(token)
                out.append(token)
                after_value = False
                expecting_key = token == "{"
            elif token in "}]":
                if not stack or (stack[-1] == "{") != (token == "}"):
                    raise JsonRepairError(f"unbalanced {token!r} at offset {match.start()}")
                if pending_comma:
                    report.add(f"trailing comma before {token!r}")
                pending_comma = False
                stack.pop()
                out.append(token)
                after_value = True
                expecting_key = False
            elif token == ",":
                if not after_value:
                    report.add("leading or doubled comma")
                    continue
                pending_comma = True
                after_value = False
                expecting_key = bool(stack) and stack[-1] == "{"
            else:  # ':'
                if not after_value or not stack or stack[-1] != "{":
                    raise JsonRepairError(f"misplaced ':' at offset {match.start()}")
                out.append(":")
                after_value = False
            continue
        # A scalar: string, number or word.
        if kind == "word":
            if token in _NON_FINITE:
                report.add(f"bare {token}")
                token = "null"
            elif token not in _LITERALS:
                raise JsonRepairError(f"unexpected word {token!r} at offset {match.start()}")
        elif kind == "string":
            token = _fix_string(token, report)
        is_key = bool(stack) and stack[-1] == "{" and (expecting_key or after_value)
        if is_key and kind != "string":
            raise JsonRepairError(f"object key is not a string at offset {match.start()}")
        begin_value()
        out.append(token)
        after_value = True
        expecting_key = False
    if stack:
        raise JsonRepairError("truncated: unclosed " + "".join(stack))
    if not out:
        raise JsonRepairError("no JSON value found")
    return "".join(out)
