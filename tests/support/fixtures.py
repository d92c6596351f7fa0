"""The stack the integration and browser tests share, one per pytest process: the SMTP sink, the
Prefect server, prefect.yaml's deployments and a worker.

One definition of each, registered from tests/conftest.py, so every test in a process gets the
same server and worker whichever directory it is in and whichever test comes first (pytest-xdist
runs the files in more than one process, each with its own stack). Nothing starts until a test
asks for it: the unit tests start none of it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import prefect.context
import pytest
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

from infra.mailsink import MailSink
from infra.settings import reset_settings
from rprp.prefect_server import PrefectServer, register_deployments
from tests.support.database import create_test_database, drop_test_database
from tests.support.stack import Worker, log_failures, make_prefect_server, worker_env


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
def prefect_server(mail_sink: MailSink, session_dir: Path) -> Iterator[PrefectServer]:
    """The one Prefect server of this pytest process, as `rprp up` runs it: API credentials, and
    its UI calling the portal's gateway (the browser tests' portal, on RPRP_PORTAL_URL). Every
    test, browser or not, shares it with the worker, whichever runs first; on PostgreSQL when
    RPRP_TEST_DATABASE_URL is set."""
    base = os.environ.get("RPRP_TEST_DATABASE_URL", "")
    database_url = ""
    if base:
        name = f"prefect_test_{uuid.uuid4().hex[:10]}"
        database_url = create_test_database(base, name)
    portal = os.environ["RPRP_PORTAL_URL"]  # chosen by the case_database fixture
    server = make_prefect_server(session_dir / "prefect", database_url=database_url,
                                 ui_api_url=f"{portal}/prefect/api")
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    os.environ["PREFECT_API_AUTH_STRING"] = server.auth_string
    os.environ["RPRP_PREFECT_UI_URL"] = f"{portal}/prefect"  # people open it through the gateway
    reset_settings()
    with contextlib.ExitStack() as settings:
        # This thread's settings, and the process-wide ones that the browser tests' portal
        # thread, and any other thread without a settings context of its own, fall back to.
        settings.enter_context(temporary_settings({PREFECT_API_URL: server.api_url,
                                                   PREFECT_API_AUTH_STRING: server.auth_string}))
        settings.enter_context(prefect.context._temporary_global_settings_context(
            prefect.context.get_settings_context()))
        yield server
    server.stop()
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("PREFECT_API_AUTH_STRING", None)
    failures = log_failures(server.log_path)
    assert failures == [], f"the Prefect server logged failures no test saw: {failures[:5]}"
    if base:
        drop_test_database(base, database_url)


@pytest.fixture(scope="session")
def prefect_api(prefect_server: PrefectServer) -> str:
    return prefect_server.api_url


@pytest.fixture(scope="session")
def deployments(prefect_api: str, session_dir: Path) -> str:
    """The work pool and prefect.yaml's deployments, registered as `rprp up` does (deploy.py)."""
    register_deployments(dict(os.environ, PREFECT_API_URL=prefect_api), session_dir)
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
