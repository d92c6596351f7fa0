"""The real components the integration tests run against, started once per session."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

ROOT = Path(__file__).resolve().parents[2]
POOL = "rprp-pool"
# A generous ceiling for waits on the stack: they end as soon as their condition holds, so it
# costs nothing when all is well, and a busy machine (each step starts a process) does not fail.
WAIT_CEILING = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrefectServer:
    """A real `prefect server start` with its UI, on PostgreSQL when the tests are given one.

    SQLite serves a developer's run; under the suite's concurrent writers it can answer 503
    "database is locked", so CI runs Prefect on PostgreSQL as a force would.
    """

    home: Path
    database_url: str = ""
    port: int = 0
    process: subprocess.Popen | None = None
    # As `rprp up` runs it: only clients with these credentials (the gateway, workers) get in.
    auth_string: str = "test-prefect-credentials-not-for-production"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        self.port = self.port or free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_UI_SERVE_BASE": "/prefect",  # as `rprp up` serves it, behind the gateway
            "PREFECT_API_DATABASE_CONNECTION_URL": self.database_url
            or f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        })
        env.pop("PREFECT_API_URL", None)
        env.pop("PREFECT_SERVER_API_AUTH_STRING", None)
        if self.auth_string:
            env["PREFECT_SERVER_API_AUTH_STRING"] = self.auth_string
        log = (self.home / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Prefect server exited; see {self.home / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Prefect server did not answer in {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


async def register_deployments() -> None:
    """Register the project's three deployments on the test server's process pool."""
    from flows.action_review import rprp_action_review
    from flows.case_lifecycle import rprp_case
    from flows.sweep import rprp_sweep

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    for flow, name in ((rprp_case, "rprp-case"), (rprp_sweep, "rprp-sweep"),
                       (rprp_action_review, "rprp-action-review")):
        deployment = await flow.to_deployment(name=name, work_pool_name=POOL,
                                              job_variables={"working_dir": str(ROOT)})
        await deployment.apply()


@dataclass
class Worker:
    """A real Prefect process worker (rprp.worker) that the test can kill and restart."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rprp.worker", "--pool", POOL, "--limit", "4"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

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
