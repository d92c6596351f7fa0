"""Everything a bench run starts, on loopback only, and stops again: a Prefect server (SQLite or a
fresh PostgreSQL database) on a free port, the project's deployments plus the bare ones, a
process worker (rprp.worker), an SMTP sink (infra.mailsink), the case DB and the portal.

The Prefect server and the project's deployments are started and registered as `rprp up` and the
tests do (rprp.prefect_server); bench code does not import from tests/.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rprp.cluster import database_url
from rprp.prefect_server import POOL, PrefectServer, worker_polling
from rprp.processes import LOOPBACK, Service, free_port, http_ok, tcp_open

ROOT = Path(__file__).resolve().parent.parent
WORKER_LIMIT = 4  # as `rprp up` and the tests: a limit is needed on a SQLite Prefect DB


# --- databases ----------------------------------------------------------------------------------

@dataclass
class Databases:
    """SQLite files in the work dir by default; fresh PostgreSQL databases (created here, dropped
    at the end) when given a PostgreSQL URL."""

    workdir: Path
    base_url: str = ""
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    created: list[str] = field(default_factory=list)

    @property
    def admin(self) -> str:
        """The server's `postgres` database, to create and drop the others from."""
        return database_url(self.base_url, "postgres", "")

    @property
    def kind(self) -> str:
        return "postgresql" if self.base_url else "sqlite"

    def _create(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)

    def drop(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def case_db(self, label: str) -> str:
        """A new, empty case DB URL (not migrated yet)."""
        if not self.base_url:
            path = self.workdir / f"{label}.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return f"sqlite:///{path}"
        name = f"rprp_bench_{self.tag}_{label}".lower()
        self._create(name)
        return database_url(self.base_url, name, "psycopg")

    def forget_case_db(self, url: str) -> None:
        """Close our connections to a case DB and delete it."""
        from infra.db import engine_for

        engine_for(url).dispose()
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            from sqlalchemy.engine import make_url

            self.drop(str(make_url(url).database))

    def prefect_db(self) -> str:
        if not self.base_url:
            return f"sqlite+aiosqlite:///{self.workdir / 'prefect' / 'prefect.db'}"
        name = f"prefect_bench_{self.tag}"
        self._create(name)
        return database_url(self.base_url, name, "asyncpg")

    def server_version(self) -> str | None:
        if not self.base_url:
            import sqlite3

            return f"SQLite {sqlite3.sqlite_version}"
        import psycopg

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as c:
            row = c.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0]}" if row else None

    def drop_all(self) -> None:
        for name in list(self.created):
            try:
                self.drop(name)
            except Exception as exc:  # noqa: BLE001 - report and carry on dropping the rest
                print(f"bench: could not drop database {name}: {exc}", file=sys.stderr)


def migrate(url: str) -> None:
    from infra.migrations import upgrade_to_head

    upgrade_to_head(url)


# --- the stack ----------------------------------------------------------------------------------

@dataclass
class BenchStack:
    workdir: Path
    databases: Databases
    poll_seconds: float = 1.0
    worker_limit: int = WORKER_LIMIT
    stop_event: threading.Event = field(default_factory=threading.Event)
    services: list[Service] = field(default_factory=list)
    prefect_port: int = 0
    portal_port: int = 0
    smtp_port: int = 0
    case_url: str = ""
    worker: Service | None = None
    worker_kind: str = ""
    server: PrefectServer | None = None
    portal: Service | None = None

    def __post_init__(self) -> None:
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.prefect_home = self.workdir / "prefect"
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        self.mail_dir = self.workdir / "mail"
        self.bare_dir = self.workdir / "bare"
        self.bare_dir.mkdir(parents=True, exist_ok=True)
        self.prefect_port = self.prefect_port or free_port()
        self.portal_port = self.portal_port or free_port()
        self.smtp_port = self.smtp_port or free_port()

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prefect_port}/prefect"

    @property
    def portal_url(self) -> str:
        return f"http://{LOOPBACK}:{self.portal_port}"

    def base_env(self) -> dict[str, str]:
        """What the bench process and every child see."""
        return {
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "RPRP_DATA_DIR": str(self.workdir / "data"),
            "RPRP_DATABASE_URL": self.case_url,
            "RPRP_SECRET_KEY": "bench-secret-key-not-for-production",
            "RPRP_PSD_EMAIL": "psd@force.example",
            "RPRP_PSD_DECISION_MAKERS": "psd@force.example",
            # The bench times the lifecycle it always has: the report is filed, not held for PSD.
            "RPRP_REPORT_QUALITY_CHECK": "never",
            # The intake figure signs in as PSD: a bootstrap user, created when the portal starts.
            "RPRP_PORTAL_USERS": "psd:psd-password:psd",
            "RPRP_PORTAL_URL": self.portal_url,
            "RPRP_PORTAL_HOST": LOOPBACK,
            "RPRP_PORTAL_PORT": str(self.portal_port),
            "RPRP_PREFECT_UI_URL": self.ui_url,
            "RPRP_SMTP_HOST": LOOPBACK,
            "RPRP_SMTP_PORT": str(self.smtp_port),
            "PYTHONUNBUFFERED": "1",
        }

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.base_env())
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
        env.update(extra)
        return env

    def apply_env_here(self) -> None:
        """Point this process (the driver) at the stack."""
        os.environ.update(self.base_env())
        from infra.settings import reset_settings

        reset_settings()

    # -- starting --------------------------------------------------------------------------------
    def _launch(self, service: Service) -> Service:
        self.services.append(service)
        service.start(self.log_dir)
        return service

    def start_mail_sink(self, port: int, directory: Path, name: str = "mailsink") -> Service:
        sink = Service(name, [sys.executable, "-m", "infra.mailsink", "--host", LOOPBACK,
                              "--port", str(port), "--dir", str(directory)],
                       self.child_env(), ready=lambda: tcp_open(port))
        self._launch(sink)
        sink.wait_ready(60, self.stop_event)
        return sink

    def start(self, timeout: float = 180) -> None:
        """Mail sink, case DB, Prefect server, deployments, worker (the portal starts on demand)."""
        self.start_mail_sink(self.smtp_port, self.mail_dir)
        self.case_url = self.databases.case_db("cases")
        self.apply_env_here()
        # No credentials (as before: the figures compare with earlier runs), and no scheduler:
        # prefect.yaml's morning sweep must not start a run in the middle of a measurement.
        self.server = PrefectServer(
            home=self.prefect_home, log_dir=self.log_dir, port=self.prefect_port,
            database_url=self.databases.prefect_db(), logging_level="WARNING",
            services={"scheduler": False}, base_env=self.child_env())
        self.services.append(self.server.launch())
        migrate(self.case_url)
        self.server.wait_ready(timeout, self.stop_event)
        import asyncio

        self.server.register_deployments(self.child_env(), stop=self.stop_event)
        asyncio.run(self.register_bench_deployments())
        self.start_worker(timeout)

    def _worker_env(self) -> dict[str, str]:
        return self.child_env(
            PREFECT_WORKER_QUERY_SECONDS=f"{self.poll_seconds:g}",
            PREFECT_WORKER_PREFETCH_SECONDS=f"{max(self.poll_seconds, 1):g}",
            PREFECT_LOGGING_LEVEL="INFO",
        )

    def start_worker(self, timeout: float = 180) -> None:
        since = datetime.now(UTC)
        self.worker = self._launch(Service(
            "worker",
            [sys.executable, "-m", "rprp.worker", "--pool", POOL, "--limit",
             str(self.worker_limit), "--name", "bench-worker"],
            self._worker_env(), ready=lambda: self._worker_polling("bench-worker", since)))
        self.worker.wait_ready(timeout, self.stop_event)
        self.worker_kind = "rprp"

    def use_worker(self, kind: str, timeout: float = 180) -> None:
        """Swap the worker serving the pool: `rprp` (python -m rprp.worker) or `stock` (Prefect's
        own `prefect worker start`, same pool, limit and poll), for side-by-side figures."""
        if self.worker_kind == kind and self.worker is not None and self.worker.running:
            return
        self.stop_service(self.worker)
        self.worker = None
        if kind == "rprp":
            self.start_worker(timeout)
        elif kind == "stock":
            name, since = "bench-stock", datetime.now(UTC)
            self.worker = self._launch(Service(
                "worker-stock",
                # No --limit: Prefect 3.8's worker with a limit crashes when a run is resumed
                # before it has released the slot of the process that suspended it ("this
                # borrower is already holding one of this CapacityLimiter's tokens"), which
                # instant answers do every step; rprp.worker fixes that. Figure 8 runs one
                # case at a time, so a limit of 4 would never bind anyway.
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                 "--name", name],
                self._worker_env(), ready=lambda: self._worker_polling(name, since)))
            self.worker.wait_ready(timeout, self.stop_event)
        else:
            raise ValueError(f"unknown worker {kind!r}: rprp or stock")
        self.worker_kind = kind

    def _worker_polling(self, name: str, since: datetime) -> bool:
        return worker_polling(self.api_url, name, since)

    def start_portal(self, timeout: float = 120) -> None:
        if self.portal is not None and self.portal.running:
            return
        self.portal = self._launch(Service(
            "portal",
            [sys.executable, "-m", "rprp.cli", "portal", "--host", LOOPBACK,
             "--port", str(self.portal_port)],
            self.child_env(), ready=lambda: http_ok(f"{self.portal_url}/healthz")))
        self.portal.wait_ready(timeout, self.stop_event)

    async def register_bench_deployments(self, profile_dir: Path | None = None) -> None:
        """The bare deployments beside the project's (which deploy.py registers from
        prefect.yaml), and each one's flow-run command.

        With `profile_dir`, the case, review and bare deployments run their flow processes under
        pyinstrument (bench.profiled_engine), each writing a profile there; without, the default
        command again (the project's as prefect.yaml declares them).
        """
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import DeploymentUpdate

        from bench.bare import bare_case, bare_review, wake_target

        def profiled(module: str) -> dict[str, str]:
            if profile_dir is None:
                return {}
            return {"command": f"{sys.executable} -m bench.profiled_engine {profile_dir} {module}"}

        variables = {"working_dir": str(ROOT)}
        for flow, name, command in (
                (bare_case, "bench-bare-case", profiled("bench.bare")),
                (bare_review, "bench-bare-review", profiled("bench.bare")),
                (wake_target, "bench-wake-target", {})):
            deployment = await flow.to_deployment(name=name, work_pool_name=POOL,
                                                  job_variables=variables | command)
            await deployment.apply()
        async with get_client() as client:
            for name, module in (("rprp-case/rprp-case", "flows.case_lifecycle"),
                                 ("rprp-action-review/rprp-action-review",
                                  "flows.action_review")):
                deployment = await client.read_deployment_by_name(name)
                await client.update_deployment(
                    deployment.id, DeploymentUpdate(job_variables=profiled(module)))

    # -- processes -------------------------------------------------------------------------------
    def worker_pid(self) -> int:
        assert self.worker is not None and self.worker.process is not None
        return self.worker.process.pid

    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def check_alive(self) -> None:
        for service in self.services:
            if not service.running:
                raise RuntimeError(f"{service.name} stopped unexpectedly; see {service.log_path}")

    # -- stopping --------------------------------------------------------------------------------
    def stop_service(self, service: Service | None) -> None:
        if service is None:
            return
        service.stop()
        if service in self.services:
            self.services.remove(service)

    def stop(self) -> None:
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001
                print(f"bench: stopping {service.name}: {exc}", file=sys.stderr)
        if self.case_url:
            try:
                from infra.db import engine_for

                engine_for(self.case_url).dispose()
            except Exception:  # noqa: BLE001
                pass
        self.databases.drop_all()


def wait_until(check, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
