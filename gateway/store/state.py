"""The gateway's SQLite state database: inventory and, as later issues land, everything that must
survive a crash exactly (alerts, assignments, control actions, the outbox).

WAL with synchronous=FULL: a committed transaction survives power loss, which a site gateway on a
small box will see. Schema changes are numbered SQL files in `migrations/`, applied in order inside
one transaction each and recorded in `schema_migrations`; `PRAGMA integrity_check` runs at open so a
damaged file is refused loudly instead of half-working.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class StateError(RuntimeError):
    """The state database cannot be used (corrupt, from a newer version, or a bad migration)."""


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise StateError(f"{path}: migration files are named NNNN_description.sql")
        found.append((int(match.group(1)), path))
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise StateError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


def open_state(path: Path, *, migrations_dir: Path = MIGRATIONS_DIR) -> sqlite3.Connection:
    """Open (creating if needed), check and migrate the state database."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise StateError(f"{path}: integrity check failed: {verdict}")
        _migrate(conn, migrations_dir)
    except sqlite3.DatabaseError as err:
        conn.close()
        raise StateError(f"{path}: not a usable state database: {err}") from err
    except StateError:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, directory: Path) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    known = migrations(directory)
    newest_known = known[-1][0] if known else 0
    if applied and max(applied) > newest_known:
        raise StateError(f"database schema v{max(applied)} is newer than this gateway (v{newest_known})")
    for number, path in known:
        if number in applied:
            continue
        script = path.read_text(encoding="utf-8")
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, strftime('%s','now'))", (number,))
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as err:
            conn.execute("ROLLBACK")
            raise StateError(f"{path.name}: migration failed: {err}") from err


def _statements(script: str) -> Iterable[str]:
    """Split a migration into statements (sqlite3's executescript would commit on its own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if statement and not all(part.strip().startswith("--") for part in statement.splitlines()):
                yield statement
            buffer = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryRow:
    id: str
    ip: str
    family: str
    make: str | None = None
    model: str | None = None
    profile_key: str | None = None
    firmware_version: str | None = None
    mac: str | None = None
    serial: str | None = None
    hostname: str | None = None
    rpc_port: int = 4028
    web_port: int = 80
    v3_port: int = 4433
    customer_id: str | None = None
    rack: str | None = None
    enabled: bool = True


_COLUMNS = tuple(InventoryRow.__dataclass_fields__)


def upsert_miners(conn: sqlite3.Connection, rows: Iterable[InventoryRow], now: int) -> int:
    """Insert or update miners by address, in one transaction. Returns the number written.

    A miner re-registered at the same address keeps its id (so its history stays joined); customer
    and rack assignments made by people are never overwritten by a scan. A known miner found at a
    new address (a DHCP lease moved) keeps its id and assignments and takes the address; whatever was
    registered at that address before is dropped from the inventory, since it is no longer there.
    """
    written = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            values: Mapping[str, Any] = {name: getattr(row, name) for name in _COLUMNS}
            moved = conn.execute("SELECT 1 FROM miners WHERE id = ? AND ip != ?", (row.id, row.ip)).fetchone()
            if moved:
                conn.execute("DELETE FROM miners WHERE ip = ? AND id != ?", (row.ip, row.id))
                conn.execute("UPDATE miners SET ip = ? WHERE id = ?", (row.ip, row.id))
            conn.execute(
                f"""
                INSERT INTO miners ({", ".join(_COLUMNS)}, created_at, updated_at)
                VALUES ({", ".join(":" + c for c in _COLUMNS)}, :now, :now)
                ON CONFLICT(ip) DO UPDATE SET
                    family=excluded.family, make=excluded.make, model=excluded.model,
                    profile_key=excluded.profile_key, firmware_version=excluded.firmware_version,
                    mac=excluded.mac, serial=excluded.serial, hostname=excluded.hostname,
                    rpc_port=excluded.rpc_port, web_port=excluded.web_port, v3_port=excluded.v3_port,
                    updated_at=excluded.updated_at
                """,
                {**values, "enabled": int(row.enabled), "now": now},
            )
            written += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return written


def list_miners(conn: sqlite3.Connection) -> list[InventoryRow]:
    rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM miners ORDER BY ip").fetchall()
    return [InventoryRow(**{**dict(row), "enabled": bool(row["enabled"])}) for row in rows]
