"""btminer API v2 write access as the simulator serves it: `get_token` and the AES-encrypted commands.

The scheme is the real one (gateway.devices.whatsminer_auth, protocols.md §3): the client derives the
AES key and the token's sign from the admin password and the salts `get_token` hands out; we decrypt
with the key of the password *we* hold, so a wrong password shows up as an undecryptable payload.

Replies, as the API doc lists the codes: 134 for `get_token`, 131 "API command OK" for a done write
(encrypted, `{"enc": "<base64>"}`), and in clear text - the miner cannot encrypt for a client whose
key it does not share - 135 "check token error" (unknown or expired token, or a payload that does not
decrypt: a wrong password), 137 "base64 decode error", 45 "permission denied" for a write command sent
unencrypted. Which code the firmware picks for a payload that decrypts to garbage (what a wrong
password produces) is not documented; we answer 135, the token check that fails.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from gateway.devices.model import Mode
from gateway.devices.whatsminer_auth import CryptoError, crypt_part, decrypt, encrypt, v2_aes_key
from gateway.simulator.families import whatsminer_state as btminer
from gateway.simulator.families.base import dumps
from gateway.simulator.families.whatsminer_replies import CODE_OK, native
from gateway.simulator.miner import SimMiner

CODE_TOKEN_OK = 134
CODE_INVALID_COMMAND = 14
CODE_COMMAND_ERROR = 132
CODE_PERMISSION_DENIED = 45
CODE_TOKEN_ERROR = 135
CODE_BASE64_ERROR = 137
MODE_COMMANDS = {"set_low_power": Mode.LOW, "set_normal_power": Mode.NORMAL, "set_high_power": Mode.HIGH}
PRIVILEGED = frozenset(
    {
        "power_off",
        "power_on",
        "set_led",
        "reboot",
        "restart_btminer",
        "adjust_power_limit",
        "update_pools",
        "factory_reset",
        "update_pwd",
        "net_config",
        "set_target_freq",
        "set_power_pct",
        *MODE_COMMANDS,
    }
)


def get_token(miner: SimMiner) -> bytes:
    state = btminer.STATES.get(miner)
    when = int(miner.clock())
    time = str(when)[-4:]  # an opaque short number; clients only feed it back into the sign
    newsalt = btminer.new_salt()
    key = crypt_part(btminer.password(miner), state.salt)
    btminer.remember_token(miner, crypt_part(key + time, newsalt))
    msg = {"time": time, "salt": state.salt, "newsalt": newsalt}
    return dumps(native(CODE_TOKEN_OK, msg, when))


def denied_in_clear(miner: SimMiner) -> bytes:
    return dumps(native(CODE_PERMISSION_DENIED, "Permission denied", int(miner.clock()), "E"))


def encrypted(miner: SimMiner, request: Mapping[str, Any]) -> bytes:
    """Decrypt, check the token, run the command, answer encrypted."""
    when = int(miner.clock())
    state = btminer.STATES.get(miner)
    data = request.get("data")
    try:
        base64.b64decode(str(data), validate=True)
    except (binascii.Error, ValueError):
        return dumps(native(CODE_BASE64_ERROR, "base64 decode error", when, "E"))
    key = v2_aes_key(btminer.password(miner), state.salt)
    try:
        body = decrypt(key, str(data))
    except CryptoError:
        body = None
    if not isinstance(body, dict) or str(body.get("token")) not in btminer.tokens(miner):
        return dumps(native(CODE_TOKEN_ERROR, "check token error", when, "E"))
    reply = _run(miner, str(body.get("cmd", "")), body, when)
    return dumps({"enc": encrypt(key, reply)})


def _run(miner: SimMiner, command: str, body: Mapping[str, Any], when: int) -> dict[str, Any]:
    done = native(CODE_OK, "API command OK", when)
    if command == "power_off":
        btminer.power_off(miner)
        return done
    if command == "power_on":
        btminer.power_on(miner)
        return done
    if command in MODE_COMMANDS:
        if btminer.set_power_mode(miner, MODE_COMMANDS[command]):
            return done
        return native(CODE_COMMAND_ERROR, "Command error", when, "E")
    if command == "adjust_power_limit":
        try:
            watts = int(str(body.get("power_limit")))
        except ValueError:
            watts = -1
        if btminer.set_power_limit(miner, watts):
            return done
        return native(CODE_COMMAND_ERROR, "Command error", when, "E")
    if command == "set_led":
        btminer.set_led(miner, str(body.get("param", "")).lower() != "auto")
        return done
    if command in ("reboot", "restart_btminer"):
        btminer.reboot(miner)
        return done
    return native(CODE_INVALID_COMMAND, "Invalid command", when, "E")
