"""Canonical JSON (RFC 8785, "JCS") and the content hashes built on it.

Why one canonical form: a signature or a hash is over *bytes*, and the same record must give the same
bytes on the gateway, in the cloud and in a client's own checker, whatever language or JSON library
each uses. RFC 8785 fixes everything a serializer may otherwise choose: no whitespace, object keys
sorted by their UTF-16 code units, strings escaped minimally, numbers written as ECMAScript writes a
double. The `rfc8785` package does the writing; this module adds the two rules we want on top:

- Only values JSON carries exactly. Integers are limited to the "safe" range |n| <= 2**53 - 1
  (JavaScript's MAX_SAFE_INTEGER): beyond it a verifier that reads numbers as doubles would see a
  different value than we signed. Callers send such values (and every money amount, which is a
  `Decimal`) as strings. NaN and infinities are refused; so are `Decimal`, bytes and other types.
- Every refusal is a `ValueError` with one line saying what was wrong, so callers catch one type.

Reading is the mirror image (`parse_json`): numbers are doubles, as RFC 8785 sees them, so a double
we wrote as `9007199254740992` reads back as that double (not as an integer we would then refuse), and
JSON that readers could disagree on (duplicate keys, NaN) is refused rather than guessed at.

Hashes are written `sha256:<64 lowercase hex>` so a reader knows the algorithm without context, and a
later algorithm can sit beside it without ambiguity.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785

__all__ = ["MAX_SAFE_INTEGER", "canonical_json", "content_hash", "parse_json", "sha256_hex"]

MAX_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: object) -> bytes:
    """The RFC 8785 bytes of `value` (dicts with str keys, lists/tuples, str, int, float, bool, None).

    Raises ValueError for anything JSON cannot carry exactly; see the module docstring."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]  # the package checks types at run time
    except rfc8785.IntegerDomainError:
        raise ValueError(
            "not canonical JSON: an integer beyond +-(2**53 - 1) is not exact in JSON; send it as a string"
        ) from None
    except rfc8785.CanonicalizationError as err:
        raise ValueError(f"not canonical JSON: {_describe(err)}") from None
    except RecursionError:
        raise ValueError("not canonical JSON: the value is nested too deeply") from None
    except ValueError:  # e.g. an integer too long for str() (Python's 4300-digit limit)
        raise ValueError("not canonical JSON: an integer beyond +-(2**53 - 1); send it as a string") from None


def _describe(err: Exception) -> str:
    text = str(err)
    if "Decimal" in text:
        return f"{text} (send money and other Decimals as strings)"
    return text


def sha256_hex(data: bytes) -> str:
    """`sha256:` followed by the lowercase hex SHA-256 of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def content_hash(value: object) -> str:
    """The hash of a value's canonical JSON: equal for equal values, whatever the key order."""
    return sha256_hex(canonical_json(value))


def parse_json(text: str | bytes) -> Any:
    """Parse JSON as RFC 8785 reads it: integers beyond the safe range become doubles; duplicate keys,
    NaN and Infinity are refused. Raises ValueError (json.JSONDecodeError for syntax, with position)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse, parse_int=_number)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _number(text: str) -> int | float:
    if len(text) <= 17:  # up to 16 digits and a sign: cheap to read exactly
        value = int(text)
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return value
    return float(text)  # what a double-reading verifier sees (inf if absurd: refused when written)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:40]!r} (readers would disagree on which one counts)")
        seen.add(key)
    return dict(pairs)


def _refuse(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")
