"""The SQLite state database on real files: numbered migrations, refusal of what it cannot trust, and
an inventory upsert that never overwrites what people decided."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.store.state import (
    MIGRATIONS_DIR,
    InventoryRow,
    StateError,
    list_miners,
    migrations,
    open_state,
    upsert_miners,
)


def applied(conn: sqlite3.Connection) -> list[int]:
    return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    found = migrations()
    assert [number for number, _ in found] == list(range(1, len(found) + 1))
    assert all(path.parent == MIGRATIONS_DIR for _, path in found)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["0001_a.sql", "0003_c.sql"], "without gaps"),
        (["0002_b.sql"], "without gaps"),
        (["0001_a.sql", "1_b.sql"], "NNNN_description.sql"),
        (["0001_Add-Miners.sql"], "NNNN_description.sql"),
    ],
)
def test_badly_numbered_migrations_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        (tmp_path / name).write_text("CREATE TABLE t (x);\n")
    with pytest.raises(StateError, match=message):
        migrations(tmp_path)
    assert not (tmp_path / "state.db").exists()


def test_migrations_are_applied_once_each_in_order(tmp_path: Path) -> None:
    """Reopening applies nothing again (the migration would fail: its table exists); a migration added
    later is applied on the next open, alone."""
    steps = tmp_path / "migrations"
    steps.mkdir()
    (steps / "0001_first.sql").write_text(
        "-- the first\nCREATE TABLE one (x INTEGER);\nINSERT INTO one VALUES (1);\n"
    )
    db = tmp_path / "state.db"
    for _ in range(3):
        open_state(db, migrations_dir=steps).close()
    (steps / "0002_second.sql").write_text(
        "CREATE TABLE two (y TEXT);\n-- a comment between statements\nINSERT INTO two VALUES ('a;b');\n"
    )
    for _ in range(2):
        open_state(db, migrations_dir=steps).close()
    conn = open_state(db, migrations_dir=steps)
    try:
        assert applied(conn) == [1, 2]
        assert [tuple(r) for r in conn.execute("SELECT x FROM one")] == [
            (1,)
        ]  # inserted once, not three times
        assert [tuple(r) for r in conn.execute("SELECT y FROM two")] == [("a;b",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        conn.close()


def test_a_failing_migration_is_rolled_back_whole(tmp_path: Path) -> None:
    steps = tmp_path / "migrations"
    steps.mkdir()
    (steps / "0001_first.sql").write_text("CREATE TABLE one (x INTEGER);\n")
    (steps / "0002_broken.sql").write_text("CREATE TABLE two (y TEXT);\nINSERT INTO missing VALUES (1);\n")
    db = tmp_path / "state.db"
    with pytest.raises(StateError, match=r"0002_broken\.sql: migration failed: no such table: missing"):
        open_state(db, migrations_dir=steps)
    with sqlite3.connect(db) as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "two" not in tables and "one" in tables
        assert [row[0] for row in raw.execute("SELECT version FROM schema_migrations")] == [1]


def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    open_state(db).close()
    newest = migrations()[-1][0]
    with sqlite3.connect(db) as raw:
        raw.execute("INSERT INTO schema_migrations VALUES (?, 0)", (newest + 1,))
    with pytest.raises(StateError, match=rf"schema v{newest + 1} is newer than this gateway \(v{newest}\)"):
        open_state(db)


def test_a_file_of_garbage_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StateError) as caught:
        open_state(db)
    message = str(caught.value)
    assert str(db) in message and "not a usable state database" in message
    assert "file is not a database" in message
    assert db.read_bytes() == bytes(range(256)) * 64  # refused, not "repaired" by overwriting


def test_a_damaged_database_is_refused(tmp_path: Path) -> None:
    """A real state.db whose pages were partly overwritten (a bad sector, a torn copy): the header is
    intact, so SQLite opens it; `PRAGMA integrity_check` (or the first read of a damaged page) at open
    refuses it."""
    db = tmp_path / "state.db"
    conn = open_state(db)
    rows = [InventoryRow(id=f"m{i}", ip=f"10.0.{i // 250}.{i % 250}", family="antminer") for i in range(2000)]
    upsert_miners(conn, rows, now=1_700_000_000)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) > 8 * page_size
    for page in (3, 5, 6):  # leave page 1 (header, schema) intact
        start = page * page_size + 8
        data[start : start + page_size // 2] = b"\xa5" * (page_size // 2)
    db.write_bytes(bytes(data))
    # Which check trips first depends on which pages the damage hit: either way, refused by name.
    with pytest.raises(StateError, match=r"state\.db: (integrity check failed|not a usable state database)"):
        open_state(db)


def test_upsert_updates_what_the_miner_says_and_keeps_what_people_set(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.db")
    try:
        first = InventoryRow(
            id="02:aa:bb:cc:dd:ee", ip="10.0.0.5", family="antminer", model="S19", firmware_version="2023",
            customer_id="acme", rack="R01",
        )  # fmt: skip
        assert upsert_miners(conn, [first], now=1000) == 1
        rescanned = InventoryRow(
            id="10.0.0.5", ip="10.0.0.5", family="antminer", model="S19 Pro", firmware_version="2024",
            web_port=8080,
        )  # fmt: skip
        assert upsert_miners(conn, [rescanned], now=2000) == 1
        (row,) = list_miners(conn)
        assert row.id == "02:aa:bb:cc:dd:ee"  # same address, same id: its history stays joined
        assert (row.model, row.firmware_version, row.web_port) == ("S19 Pro", "2024", 8080)
        assert (row.customer_id, row.rack) == ("acme", "R01")
        assert tuple(conn.execute("SELECT created_at, updated_at FROM miners").fetchone()) == (1000, 2000)
    finally:
        conn.close()


def test_upsert_is_all_or_nothing(tmp_path: Path) -> None:
    conn = open_state(tmp_path / "state.db")
    try:
        upsert_miners(conn, [InventoryRow(id="a", ip="10.0.0.1", family="antminer")], now=1)
        batch = [
            InventoryRow(id="b", ip="10.0.0.2", family="antminer"),
            InventoryRow(id="c", ip="10.0.0.3", family=None),  # type: ignore[arg-type]  # NOT NULL violated
        ]
        with pytest.raises(sqlite3.IntegrityError):
            upsert_miners(conn, batch, now=2)
        assert [row.ip for row in list_miners(conn)] == ["10.0.0.1"]
    finally:
        conn.close()


def test_a_miner_that_moved_address_keeps_its_id_and_assignments(tmp_path: Path) -> None:
    """DHCP moved a known miner (same MAC-based id) to an address another row held."""
    conn = open_state(tmp_path / "state.db")
    upsert_miners(conn, [InventoryRow(id="aa:01", ip="10.0.0.1", family="antminer"),
                         InventoryRow(id="bb:02", ip="10.0.0.2", family="antminer")], now=1)  # fmt: skip
    conn.execute("UPDATE miners SET customer_id = 'acme' WHERE id = 'aa:01'")
    upsert_miners(conn, [InventoryRow(id="aa:01", ip="10.0.0.2", family="antminer")], now=2)
    rows = {r.id: r for r in list_miners(conn)}
    assert set(rows) == {"aa:01"}
    assert (rows["aa:01"].ip, rows["aa:01"].customer_id) == ("10.0.0.2", "acme")
