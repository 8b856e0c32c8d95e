"""The device layer's error tree. Every backend translates failures into one of these at the edge.

The poller decides what to do from the class alone: `Unreachable` is retried later with backoff,
`AuthFailed` needs a person, `ProtocolError` is a firmware answering nonsense (its raw bytes are kept,
bounded, for the technician), `Unsupported` means we never sent anything.
"""

from __future__ import annotations

RAW_KEEP_BYTES = 4096  # enough to show a technician what came back, small enough to log and store


class DeviceError(Exception):
    """Base of the tree. `raw` holds at most RAW_KEEP_BYTES of what the miner sent, for diagnostics."""

    def __init__(self, message: str, *, host: str | None = None, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.raw = raw[:RAW_KEEP_BYTES] if raw else b""
        self.raw_truncated = bool(raw) and len(raw) > RAW_KEEP_BYTES  # type: ignore[arg-type]

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.host}: {message}" if self.host else message


class Unreachable(DeviceError):
    """Nothing usable came back in time: refused, reset, hung, too slow. Retry later."""


class AuthFailed(DeviceError):
    """The miner rejected our credentials or token. Retrying will not help; a person must fix them."""


class ProtocolError(DeviceError):
    """The miner answered, but not with anything we can read: garbage, wrong shape, an error code."""


class Unsupported(DeviceError):
    """The action or command does not exist for this model and firmware. Raised before any I/O."""


class ControlNotVerified(DeviceError):
    """A control write was accepted but reading back showed the miner did not take it."""
