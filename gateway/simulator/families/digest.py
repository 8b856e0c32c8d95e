"""HTTP Digest authentication (RFC 7616, MD5, qop=auth) as the Antminer web server does it
(realm "antminer"). A server-side check, so our client and pyasic face the real handshake."""

from __future__ import annotations

import hashlib
import re
import secrets

from aiohttp import web

from gateway.simulator.miner import SimMiner

REALM = "antminer"
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def challenge() -> web.HTTPUnauthorized:
    nonce = secrets.token_hex(16)
    return web.HTTPUnauthorized(
        headers={"WWW-Authenticate": f'Digest realm="{REALM}", nonce="{nonce}", qop="auth", algorithm=MD5'},
        text="401 Unauthorized",
    )


def require_digest(request: web.Request, miner: SimMiner) -> None:
    """Raise 401 with a fresh challenge unless the request carries a valid Digest response."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Digest "):
        raise challenge()
    params = {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(header[7:])
    }
    try:
        username, nonce, uri, response = (
            params["username"],
            params["nonce"],
            params["uri"],
            params["response"],
        )
    except KeyError:
        raise challenge() from None
    if not miner.credentials_ok(username, miner.password):
        raise challenge()
    ha1 = _md5(f"{username}:{params.get('realm', REALM)}:{miner.password}")
    ha2 = _md5(f"{request.method}:{uri}")
    if params.get("qop") == "auth":
        expected = _md5(f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{nonce}:{ha2}")
    if not secrets.compare_digest(expected, response):
        raise challenge()
