"""Suite-wide rules.

HASHINSIGHT_REQUIRE_ALL=1 (set by CI) turns every skip into a failure: a test that needs root-only
facilities may skip on a developer's laptop, never silently in CI.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

REQUIRE_ALL = os.environ.get("HASHINSIGHT_REQUIRE_ALL") == "1"

# Deterministic example generation in CI: a failure there must reproduce on the next run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if REQUIRE_ALL else "dev")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under HASHINSIGHT_REQUIRE_ALL=1 (CI must run everything): {reason}"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's real gateway state or profile overrides."""
    monkeypatch.delenv("HASHINSIGHT_PROFILES_DIR", raising=False)
    monkeypatch.setenv("HASHINSIGHT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("TZ", "UTC")
