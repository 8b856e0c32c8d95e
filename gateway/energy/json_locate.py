"""Find where a JSON path starts in the source text, so a refusal can name the line and column.

Why: `json.loads` tells us the line and column of a *syntax* error only. When a well-formed tariff says
something we refuse (a rate in cents, a schedule with 23 hours), the person fixing the file needs the same
pointer. This walks the text once with a small tokenizer and reports where the value at a path begins;
it runs only on the error path, after `json.loads` has accepted the text, so it need not validate.
"""

from __future__ import annotations

import json
import re

__all__ = ["JsonPath", "format_path", "locate"]

JsonPath = tuple[str | int, ...]

_TOKEN = re.compile(
    r'\s*(?:(?P<open>[\[{])|(?P<close>[\]}])|(?P<colon>:)|(?P<comma>,)|(?P<string>"(?:[^"\\]|\\.)*")'
    r'|(?P<atom>[^\s,:\[\]{}"]+))',
    re.DOTALL,
)


def format_path(path: JsonPath) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _find(text: str, target: JsonPath, fold_case: bool) -> int | None:
    # Each frame: [is_object, current key or index, expecting a key next]
    stack: list[list[object]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.lastgroup is None:
            return None
        kind, start, pos = m.lastgroup, m.start(m.lastgroup), m.end()
        top = stack[-1] if stack else None
        if kind == "close":
            stack.pop()
            continue
        if kind == "colon":
            continue
        if kind == "comma":
            if top is not None:
                if top[0]:
                    top[2] = True
                else:
                    top[1] = int(str(top[1])) + 1
            continue
        if top is not None and top[0] and top[2]:  # an object key
            key = str(json.loads(m.group("string"))) if kind == "string" else ""
            top[1], top[2] = (key.lower() if fold_case else key), False
            continue
        if tuple(frame[1] for frame in stack) == target:
            return start
        if kind == "open":
            stack.append([True, None, True] if m.group("open") == "{" else [False, 0, False])
    return None


def locate(text: str, path: JsonPath, *, fold_case: bool = True) -> tuple[int, int]:
    """1-based (line, column) where the value at `path` starts; the nearest existing ancestor if the path
    does not exist (a missing key is reported at the object that lacks it). Keys compare case-folded when
    `fold_case`, matching an importer that normalises key casing."""
    for cut in range(len(path), -1, -1):
        offset = _find(text, path[:cut], fold_case)
        if offset is not None:
            return _line_col(text, offset)
    return 1, 1
