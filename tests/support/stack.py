"""The real components the integration tests run against, started once per session."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client

from rprp.prefect_server import POOL, PrefectServer
from rprp.processes import flow_processes
from rprp.processes import free_port as free_port  # the product's, used by the tests from here

ROOT = Path(__file__).resolve().parents[2]
# A generous ceiling for waits on the stack: they end as soon as their condition holds, so it
# costs nothing when all is well, and a busy machine (each step starts a process) does not fail.
WAIT_CEILING = 300.0


# The one Prefect server (rprp.prefect_server), as the tests run it.
TEST_CREDENTIALS = "test-prefect-credentials-not-for-production"


def make_prefect_server(home: Path, **options: Any) -> PrefectServer:
    """A real `prefect server start` with its UI on a free port, as `rprp up` runs it: only
    clients with the credentials (the gateway, workers) get in. It logs warnings and worse, so
    `log_failures` reads what went wrong; its scheduler is off, so the sweep's cron in
    prefect.yaml starts no run behind a test's back (test_scheduler turns it on).

    SQLite serves a developer's run; under the suite's concurrent writers it can answer 503
    "database is locked", so CI runs Prefect on PostgreSQL (`database_url`) as a force would.
    """
    settings: dict[str, Any] = {"auth_string": TEST_CREDENTIALS, "logging_level": "WARNING",
                                "services": {"scheduler": False}}
    settings.update(options)
    return PrefectServer(home=home, **settings)


@dataclass
class Worker:
    """A real Prefect process worker (rprp.worker) that the test can kill and restart."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    pool: str = POOL
    root: Path = ROOT  # the checkout it runs from (another one: a changed copy of the code)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rprp.worker", "--pool", self.pool, "--limit", "4"],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    async def drain(self, timeout: float = WAIT_CEILING) -> None:
        """Wait until no flow run's process is left under the worker, as an operator stops a
        worker to deploy: a run that has just suspended is still exiting for a moment, and a
        SIGTERM then crashes it (the sweep would recover it, minutes later)."""
        if self.process is not None:
            pid = self.process.pid
            await eventually(lambda: not flow_processes(pid), timeout,
                             "the worker's flow processes to end", interval=0.05)

    def kill(self) -> None:
        """SIGKILL the worker and every flow process it started, as a crash would."""
        if self.process and self.process.poll() is None:
            subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


# What a server-side failure that no test sees looks like in a log (the scheduler once failed
# every minute, unseen, while every test passed).
LOG_FAILURES = ("Traceback", "InvalidRequestError", "database is locked")
# Accepted: Prefect's own SQLite contention ("database is locked" when two writes meet). Its
# server answers such a request 503 and the client retries it, and its services and heartbeats
# try again on their next loop; nothing is lost. PostgreSQL, as a force runs it, has none, so
# there every failure counts.
SQLITE_CONTENTION = "(sqlite3.OperationalError) database is locked"
_RECORD_START = re.compile(r"^(\d\d:\d\d:\d\d\.\d+ \| |=====)")


def log_failures(path: Path) -> list[str]:
    """The first line of each log record (a timestamped line and the traceback under it) that
    says something failed."""
    if not path.exists():
        return []
    records: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if _RECORD_START.match(line):
            records.append([])
        records[-1].append(line)
    return [record[0] for record in records
            if record and any(f in line for line in record for f in LOG_FAILURES)
            and not _self_healing(record)]


def _self_healing(record: list[str]) -> bool:
    return any(SQLITE_CONTENTION in line for line in record)


def worker_env(api_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": api_url,
        "PREFECT_API_AUTH_STRING": os.environ.get("PREFECT_API_AUTH_STRING", ""),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PYTHONPATH": str(ROOT),
    })
    return env


async def eventually(check: Callable[[], object], timeout: float = WAIT_CEILING, what: str = "",
                     interval: float = 0.25) -> object:
    """Poll until check() is truthy: the worker acts on its own clock, not the test's."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)


async def flow_run_state(flow_run_id: str) -> str:
    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
    return run.state.name if run.state else ""
