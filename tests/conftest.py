"""Shared fixtures: a real case DB (SQLite, or PostgreSQL with RPRP_TEST_DATABASE_URL), a real
Prefect server with the project's deployments and a real process worker, and a real SMTP server
on loopback that keeps every message (those are in tests/support/fixtures.py).
"""

from __future__ import annotations

import os

# Before anything imports Prefect, which reads its settings from the environment at import.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect SDK telemetry: seconds per import offline

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.support.database import create_test_database, drop_test_database  # noqa: E402

pytest_plugins = ["tests.support.fixtures"]

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Keep the order below when the files are spread over processes: pytest-xdist's
    `--dist loadfile` otherwise re-sorts the files by how many tests each has (its
    `--loadscope-reorder`, on by default), which put the long files, one test each, last."""
    if getattr(config.option, "dist", "no") in ("loadfile", "loadscope"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first, longest first, then the rest in their order: `./dev test` runs
    the files in two or more processes (pytest-xdist), and a long file left to the end would
    keep one process running long after the others are done."""
    def seconds(item: pytest.Item) -> float:
        mark = item.get_closest_marker("long")
        return float(mark.kwargs.get("seconds", 60)) if mark else 0.0

    items.sort(key=lambda item: -seconds(item))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rprp")


@pytest.fixture(scope="session", autouse=True)
def case_database(session_dir: Path) -> Iterator[str]:
    """One case DB for the session, migrated to head; PostgreSQL when asked for."""
    from infra.settings import reset_settings
    from rprp.processes import free_port

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
        # The port the browser tests' portal will listen on, chosen before the worker starts
        # so the links in its emails open that portal, whichever tests this process runs first.
        "RPRP_PORTAL_URL": f"http://127.0.0.1:{free_port()}",
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
