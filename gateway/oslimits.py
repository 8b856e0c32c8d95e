"""Process limits a gateway or simulator needs raised before it opens thousands of sockets."""

from __future__ import annotations

import resource


def raise_open_files_limit() -> tuple[int, int, int]:
    """Raise the soft open-files limit to the hard one. Returns (before, after, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    after, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, after, hard
