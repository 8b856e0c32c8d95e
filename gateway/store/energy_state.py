"""Settlement inputs in state.db: tariffs (exact source bytes + validity versions), market prices, and
miner ownership over time.

Why the source bytes and not a parsed form: an invoice must be reproducible from what was imported, and the
evidence file hashes that very file. Parsing again on use costs milliseconds.

Every write is one transaction (`BEGIN IMMEDIATE` ... `COMMIT`): an import either lands whole or not at all.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal

from gateway.energy.settlement_model import Assignment
from gateway.energy.tariff_file import parse_tariff_file
from gateway.energy.tariffs import PriceSeries, Tariff, TariffError
from gateway.energy.tariffs_urdb import read_urdb

__all__ = [
    "PriceImport",
    "TariffRow",
    "activate_tariff",
    "assign_miners",
    "assignments_between",
    "import_prices",
    "import_tariff",
    "list_tariffs",
    "load_prices",
    "tariff_history",
    "tariff_source",
]


# Printable and safe in every output (CSV, file names of exports, terminals): no formula lead, no control.
_CUSTOMER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,63}", re.ASCII)


class EnergyStateError(ValueError):
    """A request the stored history refuses (conflicting prices, rewriting validity, unknown id)."""


@contextmanager
def _tx(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@dataclass(frozen=True, slots=True, kw_only=True)
class TariffRow:
    id: int
    name: str
    format: str
    source_name: str
    source_sha256: str
    imported_at: int
    versions: tuple[tuple[int, int | None], ...]  # (valid_from, valid_to)


def import_tariff(
    conn: sqlite3.Connection,
    data: bytes,
    *,
    source_name: str,
    fmt: str,
    urdb_item: int | None = None,
    now: int,
) -> tuple[int, str, bool]:
    """Check and store a tariff file. Returns (id, name, new). The same bytes twice are one tariff."""
    if fmt == "urdb":
        name = read_urdb(data, item=urdb_item, valid_from=0).name  # validity comes from activation
    elif fmt == "hashinsight":
        name = parse_tariff_file(data).name
    else:
        raise EnergyStateError(f"unknown tariff format {fmt!r}")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with _tx(conn):
        found = conn.execute(
            "SELECT id FROM tariffs WHERE source_sha256 = ? AND urdb_item IS ?", (digest, urdb_item)
        ).fetchone()
        if found:
            return int(found[0]), name, False
        cur = conn.execute(
            "INSERT INTO tariffs (name, format, source_name, source_sha256, source, urdb_item, imported_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (name, fmt, source_name, digest, data, urdb_item, now),
        )
        return int(cur.lastrowid or 0), name, True


def list_tariffs(conn: sqlite3.Connection) -> list[TariffRow]:
    versions: dict[int, list[tuple[int, int | None]]] = {}
    for row in conn.execute(
        "SELECT tariff_id, valid_from, valid_to FROM tariff_versions ORDER BY valid_from"
    ):
        versions.setdefault(int(row[0]), []).append((int(row[1]), row[2]))
    return [
        TariffRow(
            id=int(r["id"]),
            name=r["name"],
            format=r["format"],
            source_name=r["source_name"],
            source_sha256=r["source_sha256"],
            imported_at=int(r["imported_at"]),
            versions=tuple(versions.get(int(r["id"]), ())),
        )
        for r in conn.execute("SELECT * FROM tariffs ORDER BY id")
    ]


def tariff_source(conn: sqlite3.Connection, tariff_id: int) -> tuple[str, str, bytes, int | None]:
    """(name, format, source bytes, urdb item) of a stored tariff."""
    row = conn.execute(
        "SELECT name, format, source, urdb_item FROM tariffs WHERE id = ?", (tariff_id,)
    ).fetchone()
    if row is None:
        raise EnergyStateError(f"no tariff with id {tariff_id} (see `hashinsight tariff show`)")
    return row[0], row[1], bytes(row[2]), row[3]


def activate_tariff(
    conn: sqlite3.Connection, tariff_id: int, *, valid_from: int, actor: str, now: int
) -> None:
    """Put `tariff_id` in force from `valid_from`, closing the version open then. Refuses to start before
    or at the latest version's start: history is appended to, never rewritten (an invoice already drafted
    under it must stay reproducible)."""
    tariff_source(conn, tariff_id)
    with _tx(conn):
        latest = conn.execute("SELECT MAX(valid_from) FROM tariff_versions").fetchone()[0]
        if latest is not None and valid_from <= latest:
            raise EnergyStateError(
                f"a tariff is already in force from {latest} (UTC epoch s); a new one must start later"
            )
        conn.execute("UPDATE tariff_versions SET valid_to = ? WHERE valid_to IS NULL", (valid_from,))
        conn.execute(
            "INSERT INTO tariff_versions (tariff_id, valid_from, valid_to, activated_at, activated_by)"
            " VALUES (?, ?, NULL, ?, ?)",
            (tariff_id, valid_from, now, actor),
        )


def tariff_history(conn: sqlite3.Connection, *, start: int, end: int, demand_interval_s: int) -> list[Tariff]:
    """The tariffs in force over `[start, end)`, built from their stored sources (real-time ones with
    their imported prices for that range). Version names are made unique (`name #2`) so a file in
    force twice stays two entries."""
    rows = conn.execute(
        "SELECT tariff_id, valid_from, valid_to FROM tariff_versions"
        " WHERE valid_from < ? AND (valid_to IS NULL OR valid_to > ?) ORDER BY valid_from",
        (end, start),
    ).fetchall()
    out: list[Tariff] = []
    seen: dict[str, int] = {}
    for tariff_id, valid_from, valid_to in rows:
        _, fmt, data, item = tariff_source(conn, int(tariff_id))
        if fmt == "urdb":
            # Validity is the activation's, never the file's (a URDB `enddate` would silently cut it short).
            parsed_urdb = read_urdb(data, item=item, valid_from=0, demand_interval_s=demand_interval_s)
            tariff = replace(parsed_urdb, valid_from=valid_from, valid_to=valid_to)
        else:
            parsed = parse_tariff_file(data)
            prices = None
            if parsed.series is not None:
                prices = load_prices(conn, parsed.series, max(start, valid_from), min(end, valid_to or end))
            tariff = parsed.build(
                valid_from=valid_from, valid_to=valid_to, demand_interval_s=demand_interval_s, prices=prices
            )
        seen[tariff.name] = seen.get(tariff.name, 0) + 1
        if seen[tariff.name] > 1:
            tariff = replace(tariff, name=f"{tariff.name} #{seen[tariff.name]}")
        out.append(tariff)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceImport:
    series: str
    added: int
    unchanged: int
    first_start: int | None
    last_start: int | None


def import_prices(
    conn: sqlite3.Connection,
    series_name: str,
    series: PriceSeries,
    *,
    fmt: str,
    source_name: str,
    data: bytes,
    now: int,
) -> PriceImport:
    """Store a parsed series under `series_name`. An interval already stored with the same price is
    counted unchanged; with a different price the whole import is refused naming the first such interval
    (a silent overwrite would change invoices already drafted)."""
    if not series_name or len(series_name) > 64 or series_name[0] in "=+-@":
        raise EnergyStateError(f"series name {series_name!r}: 1-64 characters, not starting with = + - @")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    added = unchanged = 0
    with _tx(conn):
        cur = conn.execute(
            "INSERT INTO price_imports (series, format, source_name, sha256, points, first_start, last_start,"
            " imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (series_name, fmt, source_name, digest, len(series.starts), None, None, now),
        )
        import_id = cur.lastrowid
        for start, price in zip(series.starts, series.prices_per_kwh, strict=True):
            old = conn.execute(
                "SELECT price_per_kwh, interval_s FROM price_points WHERE series = ? AND start = ?",
                (series_name, start),
            ).fetchone()
            if old is None:
                conn.execute(
                    "INSERT INTO price_points VALUES (?, ?, ?, ?, ?)",
                    (series_name, start, series.interval_s, str(price), import_id),
                )
                added += 1
            elif Decimal(old[0]) == price and old[1] == series.interval_s:
                unchanged += 1
            else:
                raise EnergyStateError(
                    f"{series_name}: interval starting {start} (UTC epoch s) is stored at {old[0]} $/kWh, "
                    f"the file says {price}; nothing imported (delete and re-import the series to replace it)"
                )
        first = series.starts[0] if series.starts else None
        last = series.starts[-1] if series.starts else None
        conn.execute(
            "UPDATE price_imports SET first_start = ?, last_start = ? WHERE id = ?", (first, last, import_id)
        )
    return PriceImport(
        series=series_name, added=added, unchanged=unchanged, first_start=first, last_start=last
    )


def load_prices(conn: sqlite3.Connection, series_name: str, start: int, end: int) -> PriceSeries:
    rows = conn.execute(
        "SELECT start, interval_s, price_per_kwh FROM price_points WHERE series = ? AND start < ?"
        " AND start + interval_s > ? ORDER BY start",
        (series_name, end, start),
    ).fetchall()
    if not rows:
        raise TariffError(
            f"no prices stored for series {series_name!r} in that range (`hashinsight prices import`)"
        )
    intervals = {int(r[1]) for r in rows}
    if len(intervals) != 1:
        raise TariffError(f"series {series_name!r} mixes interval lengths {sorted(intervals)}")
    return PriceSeries(
        interval_s=intervals.pop(),
        starts=tuple(int(r[0]) for r in rows),
        prices_per_kwh=tuple(Decimal(r[2]) for r in rows),
        source=series_name,
    )


def assign_miners(
    conn: sqlite3.Connection, miner_ids: Iterable[str], customer_id: str, *, at: int, now: int
) -> int:
    """`miner_ids` belong to `customer_id` from `at`: their open assignment ends at `at`. Refuses a change
    at or before an existing assignment's start (that would rewrite settled history)."""
    if not _CUSTOMER_ID.fullmatch(customer_id):
        raise EnergyStateError(
            f"customer id {customer_id!r}: 1-64 letters, digits, '.', '_', '-' or spaces, starting with a "
            "letter or digit"
        )
    ids = list(dict.fromkeys(miner_ids))
    with _tx(conn):
        for miner_id in ids:
            known = conn.execute(
                "SELECT customer_id, created_at FROM miners WHERE id = ?", (miner_id,)
            ).fetchone()
            if known is None:
                raise EnergyStateError(f"no miner {miner_id!r} in the inventory")
            _materialise_implicit(conn, miner_id, known[0], int(known[1]), now)
            last = conn.execute(
                "SELECT MAX(valid_from) FROM assignments WHERE miner_id = ?", (miner_id,)
            ).fetchone()[0]
            if last is not None and at <= last:
                raise EnergyStateError(
                    f"{miner_id}: an assignment already starts at {last}; a change must be later"
                )
            conn.execute(
                "UPDATE assignments SET valid_to = ? WHERE miner_id = ? AND valid_to IS NULL", (at, miner_id)
            )
            conn.execute(
                "INSERT INTO assignments (miner_id, customer_id, valid_from, valid_to, recorded_at)"
                " VALUES (?, ?, ?, NULL, ?)",
                (miner_id, customer_id, at, now),
            )
            conn.execute(
                "UPDATE miners SET customer_id = ?, updated_at = ? WHERE id = ?", (customer_id, now, miner_id)
            )
    return len(ids)


def _materialise_implicit(
    conn: sqlite3.Connection, miner_id: str, customer: str | None, created: int, now: int
) -> None:
    """A miner given a customer at registration (inventory import, demo) has no history row yet: record it
    as owned since registration before the first change, so the change closes it."""
    has = conn.execute("SELECT 1 FROM assignments WHERE miner_id = ? LIMIT 1", (miner_id,)).fetchone()
    if has is None and customer:
        conn.execute(
            "INSERT INTO assignments (miner_id, customer_id, valid_from, valid_to, recorded_at)"
            " VALUES (?, ?, ?, NULL, ?)",
            (miner_id, customer, created, now),
        )


def assignments_between(conn: sqlite3.Connection, start: int, end: int) -> list[Assignment]:
    """Ownership overlapping `[start, end)`: the history rows, plus miners that only have a customer from
    registration (owned since `created_at`)."""
    out = [
        Assignment(miner_id=r[0], customer_id=r[1], start=int(r[2]), end=None if r[3] is None else int(r[3]))
        for r in conn.execute(
            "SELECT miner_id, customer_id, valid_from, valid_to FROM assignments"
            " WHERE valid_from < ? AND (valid_to IS NULL OR valid_to > ?) ORDER BY miner_id, valid_from",
            (end, start),
        )
    ]
    implicit = conn.execute(
        "SELECT id, customer_id, created_at FROM miners WHERE customer_id IS NOT NULL AND customer_id != ''"
        " AND created_at < ? AND id NOT IN (SELECT miner_id FROM assignments)",
        (end,),
    )
    out += [Assignment(miner_id=r[0], customer_id=r[1], start=int(r[2])) for r in implicit]
    return out
