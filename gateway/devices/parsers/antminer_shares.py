"""Pools and share counters of a stock Antminer (RPC `pools`/`summary`/`devs`, CGI `pools.cgi`/`summary.cgi`).

The web CGI spells the same fields in lower case (`url`, `user`, `status`, `priority`, `lstime`), so each
lookup accepts both spellings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.devices.model import PoolReading
from gateway.devices.parsers.antminer_chains import ChainReading
from gateway.devices.parsers.common import first_present, integer

# "Last Share Time" is an epoch on the S19 2022 devs, "0:00:05" (time since) or "0" (never) in pools.
# Only an epoch is a timestamp; anything below 2001-09-09 is a counter or a duration.
_EPOCH_MIN = 1_000_000_000


def read_pools(entries: Sequence[Mapping[str, Any]]) -> tuple[PoolReading, ...]:
    """Configured pools; empty slots (URL "", the S9's third pool) are not pools. The active one is the pool
    the firmware says it is connected to (`Stratum Active`), else the highest-priority (lowest number)
    pool whose status is Alive. The status stays the firmware's word, typos included ("Deed")."""
    rows = [(e, url) for e in entries if (url := str(first_present(e, "URL", "url") or "").strip())]
    flagged = [
        i
        for i, (e, _) in enumerate(rows)
        if first_present(e, "Stratum Active", "stratum_active") in (True, "true")
    ]
    alive = sorted(
        (integer(first_present(e, "Priority", "priority")) or 0, i)
        for i, (e, _) in enumerate(rows)
        if str(first_present(e, "Status", "status")).lower() == "alive"
    )
    active = flagged[0] if flagged else (alive[0][1] if alive else None)
    return tuple(
        PoolReading(
            url=url,
            user=_text(first_present(e, "User", "user")),
            status=_text(first_present(e, "Status", "status")),
            active=i == active,
            accepted=integer(first_present(e, "Accepted", "accepted")),
            rejected=integer(first_present(e, "Rejected", "rejected")),
            last_share_ts=epoch(first_present(e, "Last Share Time", "lstime")),
        )
        for i, (e, url) in enumerate(rows)
    )


def counter(
    summary: Mapping[str, Any],
    key: str,
    pools: Sequence[PoolReading],
    pick: Callable[[PoolReading], int | None],
) -> int | None:
    """Summary's counter; without one (stats-only captures; summary.cgi has none), the pools' sum."""
    if (value := integer(summary.get(key))) is not None:
        return value
    values = [v for p in pools if (v := pick(p)) is not None]
    return sum(values) if values else None


def hw_errors(
    summary: Mapping[str, Any], stats: Mapping[str, Any], chains: Sequence[ChainReading]
) -> int | None:
    # `no_matching_work` is bmminer's name for its hardware-error counter in stats (it equals summary's
    # "Hardware Errors" on the S19 Pro capture); the list shape only has per-chain `hw`.
    value = integer(first_present(summary, "Hardware Errors", "hw_all"))
    if value is None:
        value = integer(stats.get("no_matching_work"))
    if value is None and chains and all(c.hw_errors is not None for c in chains):
        value = sum(c.hw_errors or 0 for c in chains)
    return value


def last_share(pools: Sequence[PoolReading], devs: Sequence[Mapping[str, Any]]) -> int | None:
    """The latest epoch any pool reports, or the S19 2022 `devs` pseudo-device (BTM_SOC), which carries an
    epoch "Last Share Time" even where its pools only say "0:00:03"."""
    times = [t for p in pools if (t := p.last_share_ts) is not None]
    times += [t for d in devs if (t := epoch(d.get("Last Share Time"))) is not None]
    return max(times) if times else None


def epoch(value: Any) -> int | None:
    result = integer(value)
    return result if result is not None and result >= _EPOCH_MIN else None


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None
