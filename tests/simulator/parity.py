"""Field parity between a Sample parsed from a real capture and one parsed from the simulator.

The simulator is only honest if our parsers find in its replies everything they find in the real
firmware's: a field the capture fills must not come back empty from the simulated miner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.devices.model import Sample


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, tuple) and not value)


def _missing(prefix: str, reference: Any, candidate: Any) -> list[str]:
    if reference is None:
        return []
    if candidate is None:
        return [prefix.rstrip(".")]
    gaps = []
    for field in dataclasses.fields(reference):
        ref, cand = getattr(reference, field.name), getattr(candidate, field.name)
        if not _empty(ref) and _empty(cand):
            gaps.append(prefix + field.name)
    return gaps


def missing_fields(reference: Sample, candidate: Sample) -> list[str]:
    """Fields (also inside the first board, the first pool and the identity) that `reference` has and
    `candidate` lacks. `errors` is excluded: a capture of a sick miner is not a field to copy."""
    gaps = [g for g in _missing("", reference, candidate) if g != "errors"]
    if reference.boards and candidate.boards:
        gaps += _missing("boards[0].", reference.boards[0], candidate.boards[0])
    if reference.pools and candidate.pools:
        gaps += _missing("pools[0].", reference.pools[0], candidate.pools[0])
    gaps += _missing("identity.", reference.identity, candidate.identity)
    return gaps
