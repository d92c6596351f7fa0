"""Integration fixtures: the Prefect test server, deployments, a worker, and an SMTP sink."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from rprp.mailsink import MailSink
from rprp.settings import reset_settings
from tests.support.stack import Worker, register_deployments, worker_env


@pytest.fixture(scope="session")
def mail_sink(session_dir: Path) -> Iterator[MailSink]:
    sink = MailSink(session_dir / "mail", port=0)
    sink.start()
    os.environ["RPRP_SMTP_HOST"] = "127.0.0.1"
    os.environ["RPRP_SMTP_PORT"] = str(sink.port)
    reset_settings()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def prefect_api(mail_sink: MailSink) -> Iterator[str]:
    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
    os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
async def deployments(prefect_api: str) -> str:
    await register_deployments()
    return prefect_api


@pytest.fixture(scope="session")
def worker(deployments: str, session_dir: Path) -> Iterator[Worker]:
    worker = Worker(env=worker_env(deployments), log_path=session_dir / "worker.log")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
async def stack(worker: Worker, mail_sink: MailSink) -> AsyncIterator[Worker]:
    """Everything a case needs; restarts the worker if a test killed it."""
    if worker.process is None or worker.process.poll() is not None:
        worker.start()
    yield worker
