"""Shared fixtures: a real case DB (SQLite, or PostgreSQL with RPRP_TEST_DATABASE_URL), a real
Prefect server with the project's deployments and a real process worker, and a real SMTP server
on loopback that keeps every message.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.database import create_test_database, drop_test_database

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect SDK telemetry: seconds per import offline


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rprp")


@pytest.fixture(scope="session", autouse=True)
def case_database(session_dir: Path) -> Iterator[str]:
    """One case DB for the session, migrated to head; PostgreSQL when asked for."""
    from infra.settings import reset_settings

    base = os.environ.get("RPRP_TEST_DATABASE_URL", "")
    if base:
        url = create_test_database(base, f"rprp_test_{uuid.uuid4().hex[:10]}")
    else:
        url = f"sqlite:///{session_dir / 'cases.db'}"
    os.environ.update({
        "RPRP_DATA_DIR": str(session_dir / "data"),
        "RPRP_DATABASE_URL": url,
        "RPRP_SECRET_KEY": "test-secret-key-not-for-production",
        "RPRP_PSD_EMAIL": "psd@force.example",
        "RPRP_PSD_DECISION_MAKERS": "psd@force.example,aa.delegate@force.example",
        "RPRP_PORTAL_URL": "http://127.0.0.1:8765",
        "RPRP_PREFECT_UI_URL": "http://127.0.0.1:4200",
        # The suite's cases file their reports directly; tests of PSD's quality check switch it
        # on (tests/unit/test_report_check.py).
        "RPRP_REPORT_QUALITY_CHECK": "never",
    })
    reset_settings()
    from infra.migrations import upgrade_to_head

    upgrade_to_head(url)
    yield url
    if base:
        from infra.db import engine_for

        engine_for(url).dispose()
        drop_test_database(base, url)
