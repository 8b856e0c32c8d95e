"""Whatsminer control writes: API v2 encrypted privileged commands and API v3 signed `set.*` commands.

Both writers offer the same verbs, so the driver decides *what* to do and *how to confirm it* once,
whichever API the miner speaks. Command names and parameters (protocols.md §3; Whatsminer API V2.0.x
and apidoc.whatsminer.com 3.0.x):

| verb        | API v2 (4028, AES)                               | API v3 (4433, token)                   |
|-------------|--------------------------------------------------|----------------------------------------|
| power off   | power_off respbefore="true" (reply, then stop)   | set.miner.service "stop"               |
| power on    | power_on                                         | set.miner.service "start"              |
| power mode  | set_low_power / set_normal_power / set_high_power | set.miner.power_mode "low"/...        |
| power limit | adjust_power_limit power_limit="<W>" (restarts)  | set.miner.power_limit <W>              |
| LED         | set_led color/period/duration/start, or "auto"   | set.system.led [{color,...}] or "auto" |
| reboot      | reboot                                           | set.system.reboot                      |

What each API lets us read back: v2 `summary` "Power Mode" and `get_miner_info` "ledstat"; v3
`get.miner.setting` "power-mode" and `get.device.info` system "ledstatus". "auto" is the LED's normal
state (driven by the firmware); anything else means someone set it by hand - our blink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.devices.errors import DeviceError, ProtocolError
from gateway.devices.model import Mode
from gateway.devices.parsers.common import first_section
from gateway.devices.parsers.whatsminer_common import POWER_MODES, check_v2, check_v3, check_v3_write
from gateway.devices.rpc import RpcClient
from gateway.devices.whatsminer_auth import CryptoError, decrypt, encrypt, v2_token
from gateway.devices.whatsminer_v3 import V3Client

LED_AUTO = "auto"
# A visible slow blink: one second period, lit half of it (milliseconds, as both APIs take them).
LED_BLINK = {"color": "red", "period": 1000, "duration": 500, "start": 0}
V2_MODE_COMMANDS = {Mode.LOW: "set_low_power", Mode.NORMAL: "set_normal_power", Mode.HIGH: "set_high_power"}
V3_MODE_NAMES = {Mode.LOW: "low", Mode.NORMAL: "normal", Mode.HIGH: "high"}


class Writer(Protocol):
    async def power(self, on: bool) -> None: ...

    async def power_mode(self, mode: Mode) -> None: ...

    async def power_limit(self, watts: int) -> None: ...

    async def led(self, on: bool) -> None: ...

    async def reboot(self) -> None: ...

    async def configured_mode(self) -> Mode | None:
        """The power mode the firmware is configured for (its setting, asleep or not)."""
        ...

    async def led_state(self) -> str | None:
        """The LED setting as the firmware reports it ("auto" = normal)."""
        ...


def _checked(check: Any, reply: Any, what: str, host: str) -> None:
    try:
        check(reply, what)
    except DeviceError as err:
        err.host = err.host or host
        raise


class V2Writer:
    """Privileged commands over API v2: a fresh token per command (`get_token`), then the AES payload.

    A token lives 30 minutes and the firmware keeps at most 32 per client; one per command keeps us
    far from that cap without having to track expiry, at the cost of one short extra exchange."""

    def __init__(self, rpc: RpcClient, password: str) -> None:
        self.rpc = rpc
        self.password = password

    async def privileged(self, command: str, **params: Any) -> Mapping[str, Any]:
        host = self.rpc.host
        token_reply = await self.rpc.request({"cmd": "get_token"})
        _checked(check_v2, token_reply, "get_token", host)
        msg = token_reply.get("Msg") if isinstance(token_reply, Mapping) else None
        fields = [msg.get(k) for k in ("salt", "newsalt", "time")] if isinstance(msg, Mapping) else []
        if len(fields) != 3 or not all(isinstance(f, str | int) and str(f) for f in fields):
            raise ProtocolError("get_token: reply lacks salt/newsalt/time", host=host, raw=_raw(token_reply))
        salt, newsalt, time = (str(f) for f in fields)
        token = v2_token(self.password, salt, newsalt, time)
        body = {"cmd": command, **params, "token": token.sign}
        reply = await self.rpc.request({"enc": 1, "data": encrypt(token.aes_key, body)})
        # Refusals (bad token, wrong password) come back in clear text: the miner could not decrypt.
        if isinstance(reply, Mapping) and isinstance(reply.get("enc"), str):
            try:
                reply = decrypt(token.aes_key, reply["enc"])
            except CryptoError as err:
                raise ProtocolError(f"{command}: encrypted reply: {err}", host=host) from err
        if not isinstance(reply, Mapping):
            raise ProtocolError(f"{command}: unexpected reply", host=host, raw=_raw(reply))
        _checked(check_v2, reply, command, host)
        return reply

    async def power(self, on: bool) -> None:
        if on:
            await self.privileged("power_on")
        else:
            # respbefore: answer first, then stop btminer (otherwise the reply may never come).
            await self.privileged("power_off", respbefore="true")

    async def power_mode(self, mode: Mode) -> None:
        await self.privileged(V2_MODE_COMMANDS[mode])

    async def power_limit(self, watts: int) -> None:
        await self.privileged("adjust_power_limit", power_limit=str(watts))

    async def led(self, on: bool) -> None:
        if on:
            await self.privileged("set_led", **LED_BLINK)
        else:
            await self.privileged("set_led", param=LED_AUTO)

    async def reboot(self) -> None:
        await self.privileged("reboot")

    async def configured_mode(self) -> Mode | None:
        reply = await self.rpc.command("summary")
        _checked(check_v2, reply, "summary", self.rpc.host)
        return POWER_MODES.get(str(first_section(reply, "SUMMARY").get("Power Mode", "")).lower())

    async def led_state(self) -> str | None:
        reply = await self.rpc.request({"cmd": "get_miner_info", "info": "ledstat"})
        _checked(check_v2, reply, "get_miner_info", self.rpc.host)
        msg = reply.get("Msg") if isinstance(reply, Mapping) else None
        value = msg.get("ledstat") if isinstance(msg, Mapping) else None
        return str(value) if value is not None else None


class V3Writer:
    """Signed `set.*` commands over API v3 (account "super")."""

    def __init__(self, v3: V3Client, password: str, clock: Any) -> None:
        self.v3 = v3
        self.password = password
        self.clock = clock

    async def write(self, command: str, param: Any = None) -> None:
        reply = await self.v3.write(command, param, password=self.password, ts=int(self.clock()))
        _checked(check_v3_write, reply, command, self.v3.host)

    async def power(self, on: bool) -> None:
        await self.write("set.miner.service", "start" if on else "stop")

    async def power_mode(self, mode: Mode) -> None:
        await self.write("set.miner.power_mode", V3_MODE_NAMES[mode])

    async def power_limit(self, watts: int) -> None:
        await self.write("set.miner.power_limit", watts)

    async def led(self, on: bool) -> None:
        await self.write("set.system.led", [LED_BLINK] if on else LED_AUTO)

    async def reboot(self) -> None:
        await self.write("set.system.reboot")

    async def configured_mode(self) -> Mode | None:
        reply = await self.v3.request({"cmd": "get.miner.setting"})
        msg = _msg(reply, "get.miner.setting", self.v3.host)
        return POWER_MODES.get(str(msg.get("power-mode", "")).lower())

    async def led_state(self) -> str | None:
        msg = _msg(await self.v3.request({"cmd": "get.device.info"}), "get.device.info", self.v3.host)
        system = msg.get("system")
        value = system.get("ledstatus") if isinstance(system, Mapping) else None
        return str(value) if value is not None else None


def _msg(reply: Any, what: str, host: str) -> Mapping[str, Any]:
    try:
        return check_v3(reply, what)
    except DeviceError as err:
        err.host = err.host or host
        raise


def _raw(reply: Any) -> bytes:
    return repr(reply)[:2048].encode()
