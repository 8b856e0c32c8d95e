"""The CI guard itself: under HASHINSIGHT_REQUIRE_ALL=1 a skip must fail the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_skip_fails_under_require_all(tmp_path: Path) -> None:
    (tmp_path / "test_skips.py").write_text(
        textwrap.dedent(
            """
            import pytest

            def test_needs_root():
                pytest.skip("no network namespaces here")
            """
        )
    )
    conftest = Path(__file__).with_name("conftest.py").read_text()
    (tmp_path / "conftest.py").write_text(conftest)
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    relaxed = subprocess.run(run, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False)
    strict = subprocess.run(
        run,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HASHINSIGHT_REQUIRE_ALL": "1"},
        check=False,
    )
    assert relaxed.returncode == 0, relaxed.stdout
    assert strict.returncode == 1, strict.stdout
    assert "HASHINSIGHT_REQUIRE_ALL" in strict.stdout
