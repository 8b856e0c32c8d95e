"""Shared pieces of the executor tests: a real state.db with the curtailment migration applied.

Migrations must be numbered without gaps; while other migrations of the same release are still being
written, the missing numbers are filled with empty placeholders in a temporary copy of the directory.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from gateway.store.state import MIGRATIONS_DIR, open_state


def state_db(tmp_path: Path) -> sqlite3.Connection:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    numbers = set()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        shutil.copy(path, migrations / path.name)
        numbers.add(int(path.name[:4]))
    for missing in set(range(1, max(numbers) + 1)) - numbers:
        (migrations / f"{missing:04d}_placeholder.sql").write_text("-- not yet landed\n")
    return open_state(tmp_path / "state.db", migrations_dir=migrations)
