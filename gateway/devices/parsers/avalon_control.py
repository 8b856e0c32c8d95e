"""Avalon control replies: what `ascset|0,<option>,...` answers mean (Canaan cgminer 4.11.1).

Pure functions over decoded replies, so the control methods (AvalonDriver) and their tests share one
reading of the firmware's three reply shapes. Captures: tests/fixtures/devices/avalon/avalon_q_ascset_*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.devices.errors import ProtocolError
from gateway.devices.parsers.common import check_status, integer, status_entry


@dataclass(frozen=True, slots=True, kw_only=True)
class AscsetResult:
    """What an `ascset|0,<option>,...` reply says. Canaan answers in three shapes: STATUS I / Code 118
    "ASC 0 set info: <detail>" (softoff/softon/help), S / 119 "ASC 0 set OK" (workmode, worklevel, led),
    E / 120 "ASC 0 set failed: <why>". `effective_at` is the epoch in "success softoff:<ts>"."""

    ok: bool
    code: int | None
    message: str
    detail: str = ""
    options: tuple[str, ...] = ()
    effective_at: int | None = None


def interpret_ascset(reply: Any) -> AscsetResult:
    """Pure reading of an ascset reply. Access denied / invalid command raise (AuthFailed / Unsupported)
    like any other command; a refused setting is a result with ok=False, for the caller to report."""
    entry = status_entry(reply)
    if not entry:
        raise ProtocolError("ascset: reply has no STATUS")
    code = integer(entry.get("Code"))
    message = str(entry.get("Msg") or "")
    if code not in (118, 119, 120):
        check_status(reply, "ascset")
    detail = re.sub(r"^ASC \d+ set (info|OK|failed):?\s*", "", message).strip()
    if code == 119:
        return AscsetResult(ok=True, code=code, message=message)
    if code == 118:
        failed = detail.lower().startswith(("fail", "error", "invalid"))
        options = tuple(part for part in detail.split("|") if part) if "|" in detail else ()
        at = re.search(r"(?:softoff|softon):(\d+)", detail)
        return AscsetResult(
            ok=not failed,
            code=code,
            message=message,
            detail=detail,
            options=options,
            effective_at=int(at.group(1)) if at else None,
        )
    return AscsetResult(ok=False, code=code, message=message, detail=detail)
