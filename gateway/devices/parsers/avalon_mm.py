"""Canaan's packed telemetry: the `Key[value value ...]` string inside an Avalon `stats` reply.

cgminer 4.11 on Avalon puts nearly everything the machine knows into one JSON *string* per MM (machine
module) controller, e.g. `stats.STATS[0]["MM ID0"]` on the A10/A11/A12 series:

    Ver[1246-83-21072802_4ec6bb0_211fc46] DNA[02010000cbd2fd6d] SYSTEMSTATU[Work: In Work, Hash Board: 3 ]
    ... PS[0 1214 1316 242 3189 1320 3504] ... ATAOPTS0[--avalon10-freq 376:396:416:436 ...] ... WORKMODE[1]

The Avalon Q / Nano firmwares wrap the same tokens in a section envelope and split per-board data off:
`"MM ID0:Summary": "'STATS':{Ver[Q-...] ... Nonce Mask[25]}"` and `"HBinfo": "'HB0':{PVT_T0[...] MW0[...]}"`.

What the captures show, and what the scanner below therefore copes with:
* keys may contain spaces (`Nonce Mask[25]`) - a key is everything between the previous `]` and this `[`;
* values may contain spaces, colons, commas and dashes (`SYSTEMSTATU[Work: In Idle, Hash Board: 1]`,
  `ATAOPTS0[--avalon10-freq 376:396:416:436 ...]`), may be empty (`FACOPTS0[]`, `SSID[]`), and are padded
  with runs of blanks (`PVT_T0[ 63  70 ...]`);
* brackets nest in no capture, but the scanner counts depth anyway so a nested `[..]` stays inside its value;
* a truncated string (an unclosed `[`) ends the scan: the tokens before it are kept, the partial one is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.devices.parsers.common import number

# `'STATS':{` / `'HB0':{` - the envelope the Avalon Q firmware puts around a token list.
_SECTION = re.compile(r"'([^'\[\]{}]+)'\s*:\s*\{")
# `MM ID0` (A10..A12) or `MM ID0:Summary` (Avalon Q, Nano): one per MM controller; cgminer numbers them.
MM_KEY = re.compile(r"^MM ID(\d+)(?::Summary)?$")


def tokens(text: str) -> dict[str, str]:
    """Key -> raw value text (inside the brackets, stripped). The first occurrence of a key wins.

    Found with str.find, not character by character: an Avalon's MM string runs to kilobytes and is
    parsed for every Avalon in every cycle. Only a value holding a `[` is scanned for nesting."""
    result: dict[str, str] = {}
    position = 0
    find = text.find
    while True:
        opening = find("[", position)
        if opening < 0:
            break
        # Whatever precedes the key since the last token (an envelope's `{`, a stray `}`) is not key.
        before = text[position:opening]
        key = before[max(before.rfind("{"), before.rfind("}")) + 1 :].strip()
        closing = find("]", opening + 1)
        if closing < 0:  # unclosed bracket: a truncated reply; keep what was complete
            break
        if find("[", opening + 1, closing) >= 0:
            closing = _nested_close(text, opening)
            if closing < 0:
                break
        if key:
            result.setdefault(key, text[opening + 1 : closing].strip())
        position = closing + 1
    return result


def _nested_close(text: str, opening: int) -> int:
    """The `]` that closes the `[` at `opening`, counting depth; -1 when it is never closed."""
    depth = 0
    for index in range(opening, len(text)):
        char = text[index]
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
    return -1


def sections(text: str) -> dict[str, dict[str, str]]:
    """Split `'STATS':{...} 'HB0':{...}` into named token maps; a bare token list is section ""."""
    starts = list(_SECTION.finditer(text))
    if not starts:
        return {"": tokens(text)}
    result: dict[str, dict[str, str]] = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = text[match.end() : end].rstrip().removesuffix("}")
        result.setdefault(match.group(1), tokens(body))
    return result


def values(raw: str | None) -> list[float | None]:
    """The numbers of a multi-value token, by position (`PS[0 1214 1316 242 3189 1320 3504]`). A
    position that is not a number stays None so later indexes keep their meaning."""
    if not raw:
        return []
    return [number(part) for part in raw.split()]


def value(raw: str | None) -> float | None:
    """The single number of a token (`GHSspd[81072.68]`, `FanR[72%]`), None if absent or not a number."""
    found = values(raw)
    return found[0] if len(found) == 1 else None


def find_mm(entry: Mapping[str, object]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The MM ID0 tokens and the per-board `HBinfo` sections of one STATS entry (empty when absent).

    Multi-MM rigs (several `MM IDn` strings) exist on the old AUC-chained Avalons; every A10+ and the
    Avalon Q report exactly one (`MM Count: 1`), so only the lowest-numbered MM is read.
    """
    found = sorted(
        ((int(m.group(1)), key) for key in entry if isinstance(key, str) and (m := MM_KEY.match(key))),
    )
    mm: dict[str, str] = {}
    if found:
        raw = entry[found[0][1]]
        if isinstance(raw, str):
            parts = sections(raw)
            mm = parts.get("STATS") or parts.get("") or next(iter(parts.values()), {})
    boards: dict[str, dict[str, str]] = {}
    hbinfo = entry.get("HBinfo")
    if isinstance(hbinfo, str):
        boards = {name: body for name, body in sections(hbinfo).items() if name}
    return mm, boards
