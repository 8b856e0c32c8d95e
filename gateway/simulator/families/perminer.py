"""Firmware state a front-end keeps per simulated miner (tokens, configured modes, LED settings).

Front-ends are module-level singletons serving a whole fleet, so state a real controller keeps in its
own memory lives here, keyed by the miner's address but bound to the `SimMiner` object itself: a new
simulator reusing an address (the next test) starts from factory state instead of the last one's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from gateway.simulator.miner import SimMiner

S = TypeVar("S")


class PerMiner(Generic[S]):
    def __init__(self, factory: Callable[[SimMiner], S]) -> None:
        self._factory = factory
        self._states: dict[str, tuple[SimMiner, S]] = {}

    def get(self, miner: SimMiner) -> S:
        held = self._states.get(miner.ip)
        if held is None or held[0] is not miner:
            held = (miner, self._factory(miner))
            self._states[miner.ip] = held
        return held[1]
