"""Process settings a gateway or simulator needs before it serves thousands of miners: the open-files
limit (thousands of sockets) and the garbage collector's thresholds (millions of short-lived objects)."""

from __future__ import annotations

import gc
import resource

# A poll cycle decodes and parses 10,000 replies: millions of short-lived dicts and lists. At CPython's
# default young-generation threshold (700) the collector runs every few miners, and its full passes
# over everything alive (a driver, a poll state and a last sample per miner) cost a fifth of the
# gateway's CPU at 10,000 miners (bench/pipeline.py). Replies are freed by reference counting, not by
# the collector, so collecting less often only lets the rare reference cycle live a little longer.
GC_THRESHOLDS = (10_000, 10, 10)


def raise_open_files_limit() -> tuple[int, int, int]:
    """Raise the soft open-files limit to the hard one. Returns (before, after, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    after, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, after, hard


def tune_garbage_collector() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Raise the collector's thresholds (never lower them). Returns (before, after)."""
    before = gc.get_threshold()
    after = (
        max(before[0], GC_THRESHOLDS[0]),
        max(before[1], GC_THRESHOLDS[1]),
        max(before[2], GC_THRESHOLDS[2]),
    )
    gc.set_threshold(*after)
    return before, after
