"""`rprp up --cluster`: a force-shaped installation on loopback, from the engines already here.

What a force runs on several machines (README, "A force's installation"), started on this one so
that it can be tested rather than only described:

- PostgreSQL for Prefect's database and for the case DB (two databases on the server it is
  given, created when missing), or on a PostgreSQL server of its own (`own_postgres`: a
  throwaway cluster from initdb, which the chaos suite restarts);
- Redis for Prefect's messaging, event ordering, lease storage and docket (prefect-redis): the
  local one when it answers, or a `redis-server` of its own;
- `prefect server database upgrade` once, then two (or more) API replicas,
  `prefect server start --no-services`, each on its own port;
- HAProxy in front of the replicas (health-checked on /api/health, a request to a replica that
  has gone is tried again on another), the one API URL every client is given;
- Prefect's background services (scheduler, late runs, triggers, ...) as one process of their
  own, `prefect server services start`;
- the SMTP sink (unless RPRP_SMTP_HOST names a server), two (or more) `rprp.worker`s, and the
  portal with its gateway.

Each part is a child process in its own process group (rprp.processes.Service), logging to
`<data dir>/cluster/logs/<name>.log`. The chaos suite (bench/chaos.py) uses the methods that kill
and restart one part at a time; `down()` stops everything this cluster started, and only that.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from infra.settings import PROJECT_ROOT
from rprp.prefect_server import (
    POOL,
    PrefectServer,
    asyncpg_url,
    register_deployments,
    worker_polling,
)
from rprp.processes import (
    LOOPBACK,
    Service,
    StackError,
    free_port,
    http_ok,
    port_is_free,
    tcp_open,
)

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
WORKER_LIMIT = 4


def haproxy_binary() -> str | None:
    """HAProxy, on PATH or where Debian puts it (/usr/sbin is not on every user's PATH)."""
    found = shutil.which("haproxy")
    if found:
        return found
    return "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None


def postgres_binaries() -> Path | None:
    """The directory with PostgreSQL's initdb and postgres: on PATH, or Debian's newest
    /usr/lib/postgresql/<version>/bin (not on PATH there)."""
    found = shutil.which("initdb")
    if found and shutil.which("postgres"):
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda path: int(path.parent.parent.name)
                      if path.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def postgres_user() -> str | None:
    """Whom a private PostgreSQL server runs as: us, or `postgres` when we are root (the
    server refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("a PostgreSQL server of our own cannot run as root, and there is no "
                         "postgres user to run it as") from exc
    return "postgres"


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(database_url(url, "postgres", ""), connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001 - not up (yet)
        return False


def redis_answers(url: str) -> bool:
    """Whether a Redis server answers PING at `url` (redis://host:port[/db])."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or LOOPBACK, parsed.port or 6379),
                                      timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def database_url(server_url: str, name: str, driver: str) -> str:
    """`server_url` (any database on the server) with another database and driver."""
    from sqlalchemy.engine import make_url

    url = make_url(server_url.replace("postgres://", "postgresql://", 1))
    return url.set(drivername=f"postgresql+{driver}" if driver else "postgresql",
                   database=name).render_as_string(hide_password=False)


def ensure_database(server_url: str, name: str, extensions: tuple[str, ...] = ()) -> bool:
    """Create database `name` on the server unless it exists; True if it was created."""
    import psycopg

    admin = database_url(server_url, "postgres", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    if extensions:
        with psycopg.connect(database_url(server_url, name, ""), autocommit=True) as conn:
            for extension in extensions:
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
    return not exists


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(database_url(server_url, "postgres", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def end_connections(server_url: str, name: str) -> int:
    """End every connection to database `name` (as a PostgreSQL restart does to its clients):
    each pool must notice and connect again. The number of connections ended."""
    import psycopg

    with psycopg.connect(database_url(server_url, "postgres", ""), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return sum(1 for (ended,) in rows if ended)


def haproxy_config(port: int, replicas: Mapping[str, int]) -> str:
    """One front door for the API replicas: round robin, a health check every half second (a
    replica is out after one failed check and back after one good one), and a request whose
    connection a replica refused sent to another (`retries` with `redispatch`). Long timeouts
    for the event websockets the workers and the UI keep open."""
    servers = "\n".join(
        f"    server {name} {LOOPBACK}:{replica_port} check inter 500ms fall 1 rise 1"
        for name, replica_port in replicas.items())
    return f"""# Written by rprp.cluster: the Prefect API replicas behind one address.
global
    maxconn 2048

defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout tunnel 3600s
    retries 3
    option redispatch
    retry-on conn-failure empty-response 503

frontend prefect_api
    bind {LOOPBACK}:{port}
    default_backend prefect_replicas

backend prefect_replicas
    balance roundrobin
    option httpchk GET /api/health
    http-check expect status 200
{servers}
"""


@dataclass
class ClusterOptions:
    # A PostgreSQL server on which the cluster may create its two databases.
    postgres_url: str = DEFAULT_POSTGRES_URL
    database_prefix: str = "rprp_cluster"
    # Empty: the local Redis if it answers at 127.0.0.1:6379, else a redis-server of our own.
    redis_url: str = ""
    own_redis: bool = False  # always start a redis-server of our own (chaos restarts it)
    # A throwaway PostgreSQL server of our own (initdb in a temporary directory, removed at
    # down()) instead of `postgres_url`: the chaos suite restarts it.
    own_postgres: bool = False
    replicas: int = 2
    workers: int = 2
    worker_limit: int = WORKER_LIMIT
    prefect_port: int = 4200  # the load balancer: the one API URL
    portal_port: int = 8000
    portal: bool = True
    scheduler: bool = True  # the services process's scheduler (prefect.yaml's morning sweep)
    poll_seconds: float = 1.0
    drop_databases: bool = False  # at down(): tests and the chaos suite start afresh
    own_mail_sink: bool = False  # the sink even when RPRP_SMTP_HOST is set (chaos counts there)
    ready_timeout: float = 240.0
    extra_env: dict[str, str] = field(default_factory=dict)


class Cluster:
    """Starts the parts in order and stops them in reverse; kills and restarts single parts."""

    def __init__(self, data_dir: Path, options: ClusterOptions,
                 stop: threading.Event | None = None) -> None:
        self.options = options
        self.data_dir = data_dir
        self.home = data_dir / "cluster"
        self.log_dir = self.home / "logs"
        self.mail_dir = self.home / "mail"
        self.stop_event = stop or threading.Event()
        self.services: list[Service] = []
        self.replicas: list[PrefectServer] = []
        self.workers: dict[str, Service] = {}
        self.mail_sink: Service | None = None
        self.redis: Service | None = None
        self.postgres: Service | None = None
        self.postgres_dir: Path | None = None
        self.postgres_port = free_port()
        self.balancer: Service | None = None
        self.portal: Service | None = None
        self.prefect_services: Service | None = None
        self.replica_ports = [free_port() for _ in range(options.replicas)]
        self.redis_port = free_port()
        self.smtp_port = free_port()
        self.use_mail_sink = options.own_mail_sink or not os.environ.get("RPRP_SMTP_HOST")
        self.prefect_database = f"{options.database_prefix}_prefect"
        self.case_database = f"{options.database_prefix}_cases"
        self._redis_url = options.redis_url
        self._created: list[str] = []
        self._worker_serial = 0

    # -- where things are ------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.options.prefect_port}/api"

    @property
    def portal_url(self) -> str:
        return f"http://{LOOPBACK}:{self.options.portal_port}"

    @property
    def ui_url(self) -> str:
        return f"{self.portal_url}/prefect" if self.options.portal else \
            f"http://{LOOPBACK}:{self.options.prefect_port}/prefect"

    @property
    def redis_url(self) -> str:
        return self._redis_url or f"redis://{LOOPBACK}:{self.redis_port}"

    @property
    def postgres_url(self) -> str:
        """The PostgreSQL server holding the two databases."""
        if self.options.own_postgres:
            return f"postgresql://postgres@{LOOPBACK}:{self.postgres_port}/postgres"
        return self.options.postgres_url

    @property
    def case_url(self) -> str:
        return database_url(self.postgres_url, self.case_database, "psycopg")

    @property
    def prefect_db_url(self) -> str:
        return asyncpg_url(database_url(self.postgres_url, self.prefect_database, ""))

    @functools.cached_property
    def auth_string(self) -> str:
        """PREFECT_SERVER_API_AUTH_STRING, or a secret made once under the cluster's home (read
        once: every child's environment and every readiness check asks for it)."""
        given = os.environ.get("PREFECT_SERVER_API_AUTH_STRING", "")
        if given:
            return given
        from rprp.stack import read_or_create_secret

        self.home.mkdir(parents=True, exist_ok=True)
        return read_or_create_secret(self.home / "prefect-api-auth.key", prefix="rprp:")

    def client_env(self) -> dict[str, str]:
        """What every client (worker, portal, deploy.py, the chaos driver) sees."""
        env = {
            "RPRP_DATA_DIR": str(self.data_dir),
            "RPRP_DATABASE_URL": self.case_url,
            "RPRP_PORTAL_HOST": LOOPBACK,
            "RPRP_PORTAL_PORT": str(self.options.portal_port),
            "RPRP_PORTAL_URL": self.portal_url,
            "RPRP_PREFECT_UI_URL": self.ui_url,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_API_AUTH_STRING": self.auth_string,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_HOME": str(self.home / "prefect-client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "1"),
            "PYTHONUNBUFFERED": "1",
        }
        if self.use_mail_sink:
            env.update({"RPRP_SMTP_HOST": LOOPBACK, "RPRP_SMTP_PORT": str(self.smtp_port)})
        env.update(self.options.extra_env)
        return env

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.client_env())
        env["PYTHONPATH"] = str(PROJECT_ROOT) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def redis_env(self) -> dict[str, str]:
        """prefect-redis for every server process: messaging, its cache, causal ordering of
        events, concurrency leases and docket (Prefect's task queue), on db 0 and db 1."""
        url = self.redis_url.rstrip("/")
        base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
        return {
            "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
            "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
            "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
            "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
            "PREFECT_REDIS_MESSAGING_URL": f"{base}/0",
            "PREFECT_SERVER_DOCKET_URL": f"{base}/1",
            "PREFECT_API_DATABASE_MIGRATE_ON_START": "false",
            "PREFECT_SERVER_DATABASE_MIGRATE_ON_START": "false",
        }

    # -- starting --------------------------------------------------------------------------------
    def up(self) -> None:
        for directory in (self.log_dir, self.mail_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._check()
        if self.use_mail_sink:
            self.start_mail_sink()
        if self.options.own_postgres:
            self._init_postgres()
            self.start_postgres()
        self._start_redis()
        self._databases()
        self._upgrade_prefect_database()
        # Each part spends seconds importing Prefect, so what can start together does. The
        # first replica starts alone among the replicas: each registers Prefect's block types
        # as it starts, and two at once collide on the same rows (a unique violation that
        # stops one). Prefect's services start beside it, the other replicas once it is up,
        # and the workers and the portal once the deployments are in.
        self.start_replica(0, wait=False)
        self._start_prefect_services()
        self.replicas[0].wait_ready(self.options.ready_timeout, self.stop_event)
        for index in range(1, self.options.replicas):
            self.start_replica(index, wait=False)
        self._start_balancer()  # it serves from the first replica until the others are up
        register_deployments(self.child_env(), self.log_dir, timeout=300, stop=self.stop_event)
        starting = [self.workers[self.start_worker(wait=False)]
                    for _ in range(self.options.workers)]
        if self.options.portal:
            starting.append(self._start_portal(wait=False))
        for service in starting:
            service.wait_ready(self.options.ready_timeout, self.stop_event)
        for replica in self.replicas[1:]:
            replica.wait_ready(self.options.ready_timeout, self.stop_event)

    def _check(self) -> None:
        if haproxy_binary() is None:
            raise StackError("the cluster's load balancer is HAProxy, which is not installed: "
                             "apt-get install haproxy (./dev test installs it as root)")
        for name, port in (("load balancer", self.options.prefect_port),
                           ("portal", self.options.portal_port)):
            if (name != "portal" or self.options.portal) and not port_is_free(port):
                raise StackError(f"port {port} on {LOOPBACK} (for the {name}) is in use")
        if self.options.own_postgres:
            if postgres_binaries() is None:
                raise StackError("a PostgreSQL server of its own needs PostgreSQL's initdb and "
                                 "postgres, which are not installed (apt-get install postgresql)")
            postgres_user()
        else:
            try:
                import psycopg

                with psycopg.connect(database_url(self.options.postgres_url, "postgres", ""),
                                     connect_timeout=5):
                    pass
            except Exception as exc:  # noqa: BLE001 - whatever the driver says, say it plainly
                raise StackError(
                    f"the cluster needs PostgreSQL at {self.options.postgres_url} (a server on "
                    f"which it may create databases; RPRP_CLUSTER_POSTGRES_URL): {exc}") from exc
        if not self._redis_url and not self.options.own_redis and redis_answers(
                DEFAULT_REDIS_URL):
            self._redis_url = DEFAULT_REDIS_URL
        if self._redis_url and not redis_answers(self._redis_url):
            raise StackError(f"Redis does not answer at {self._redis_url} (RPRP_CLUSTER_REDIS_URL)")
        if not self._redis_url and shutil.which("redis-server") is None:
            raise StackError("no Redis answers at 127.0.0.1:6379 and redis-server is not "
                             "installed: start one, or set RPRP_CLUSTER_REDIS_URL")

    def _launch(self, service: Service, timeout: float | None = None,
                wait: bool = True) -> Service:
        """Start `service`; unless `wait` is False, return once it is ready."""
        self.services.append(service)
        service.start(self.log_dir)
        if wait:
            service.wait_ready(timeout or self.options.ready_timeout, self.stop_event)
        return service

    def start_mail_sink(self) -> None:
        self.mail_sink = self._launch(Service(
            "mailsink", [sys.executable, "-m", "infra.mailsink", "--host", LOOPBACK,
                         "--port", str(self.smtp_port), "--dir", str(self.mail_dir)],
            self.child_env(), ready=lambda: tcp_open(self.smtp_port)))

    def stop_mail_sink(self) -> None:
        self._stop(self.mail_sink)
        self.mail_sink = None

    def _start_redis(self) -> None:
        if self._redis_url:
            return
        self.redis = self._launch(Service(
            "redis", ["redis-server", "--bind", LOOPBACK, "--port", str(self.redis_port),
                      "--save", "", "--appendonly", "no", "--dir", str(self.home)],
            self.child_env(), ready=lambda: redis_answers(self.redis_url)))

    def restart_redis(self) -> None:
        if self.redis is None:
            raise StackError("this cluster uses a Redis it did not start; it will not restart it")
        self._stop(self.redis)
        self.redis = None
        self._start_redis()

    def _init_postgres(self) -> None:
        """initdb a throwaway cluster in a directory of its own under the system's temporary
        directory (which the postgres user can reach when we are root; ours may not be)."""
        import tempfile

        user = postgres_user()
        self.postgres_dir = Path(tempfile.mkdtemp(prefix="rprp-cluster-pg-"))
        if user is not None:
            shutil.chown(self.postgres_dir, user)
        binaries = postgres_binaries()
        assert binaries is not None  # _check said so
        Service("postgres-initdb",
                [str(binaries / "initdb"), "-D", str(self.postgres_dir / "data"), "-U",
                 "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                self._postgres_env(), cwd=self.postgres_dir, user=user,
                ).run_to_end(self.log_dir, 120, self.stop_event)

    def _postgres_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C",
                "TZ": "UTC"}

    def start_postgres(self) -> None:
        """The private server on its port, loopback only, its socket in its own directory;
        enough connections for two replicas, the services, the workers' runs and the portal."""
        assert self.postgres_dir is not None and (binaries := postgres_binaries()) is not None
        self.postgres = self._launch(Service(
            "postgres", [str(binaries / "postgres"), "-D", str(self.postgres_dir / "data"),
                         "-p", str(self.postgres_port), "-k", str(self.postgres_dir),
                         "-c", f"listen_addresses={LOOPBACK}", "-c", "max_connections=300"],
            self._postgres_env(), cwd=self.postgres_dir, user=postgres_user(),
            stop_signal=signal.SIGINT, ready=lambda: postgres_answers(self.postgres_url)))

    def restart_postgres(self, down_seconds: float = 0.0) -> None:
        """Stop the private server as an operator's restart does (fast shutdown: every
        connection is ended, what was committed stays), wait, and start it again."""
        if self.postgres is None:
            raise StackError("this cluster uses a PostgreSQL it did not start; it will not "
                             "restart it")
        self._stop(self.postgres)
        self.postgres = None
        if down_seconds:
            self.stop_event.wait(down_seconds)
        self.start_postgres()

    def _databases(self) -> None:
        for name, extensions in ((self.prefect_database, ("pg_trgm",)),
                                 (self.case_database, ())):
            if ensure_database(self.postgres_url, name, extensions):
                self._created.append(name)
        from infra.migrations import upgrade_to_head

        upgrade_to_head(self.case_url)

    def _server_env(self) -> dict[str, str]:
        env = self.child_env()
        for key in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
            env.pop(key, None)
        env.update(self.redis_env())
        if not self.options.scheduler:
            env["PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED"] = "false"
        return env

    def _upgrade_prefect_database(self) -> None:
        """Once, before any replica starts: two replicas migrating at once would race."""
        env = self._server_env()
        env.update({"PREFECT_API_DATABASE_CONNECTION_URL": self.prefect_db_url,
                    "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.prefect_db_url})
        Service("prefect-db-upgrade",
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env).run_to_end(self.log_dir, 300, self.stop_event)

    def _replica(self, index: int) -> PrefectServer:
        return PrefectServer(
            home=self.home / "prefect-server", log_dir=self.log_dir,
            port=self.replica_ports[index], database_url=self.prefect_db_url,
            auth_string=self.auth_string, ui_api_url=f"{self.ui_url}/api",
            base_env=self._server_env(), name=f"prefect-api-{index + 1}", no_services=True,
            extra_env=self.redis_env())

    def start_replica(self, index: int, wait: bool = True) -> None:
        replica = self._replica(index)
        if index < len(self.replicas):
            self.replicas[index] = replica
        else:
            self.replicas.append(replica)
        service = replica.launch()
        self.services.append(service)
        if wait:
            replica.wait_ready(self.options.ready_timeout, self.stop_event)

    def kill_replica(self, index: int) -> None:
        """SIGKILL one API replica (as a machine lost would): no goodbye to the balancer."""
        service = self.replicas[index].service
        self._kill(service)

    def _start_balancer(self) -> None:
        config = self.home / "haproxy.cfg"
        config.write_text(haproxy_config(self.options.prefect_port, {
            f"api{index + 1}": port for index, port in enumerate(self.replica_ports)}))
        self.balancer = self._launch(Service(
            "haproxy", [haproxy_binary() or "haproxy", "-db", "-f", str(config)],
            self.child_env(),
            ready=lambda: http_ok(f"{self.api_url}/health")))

    def _start_prefect_services(self) -> None:
        env = self._server_env()
        env.update({"PREFECT_API_DATABASE_CONNECTION_URL": self.prefect_db_url,
                    "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.prefect_db_url,
                    "PREFECT_HOME": str(self.home / "prefect-server"),
                    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"})
        self.prefect_services = self._launch(Service(
            "prefect-services", [sys.executable, "-m", "prefect", "server", "services", "start"],
            env), timeout=10)

    def _worker_env(self) -> dict[str, str]:
        env = self.child_env()
        env["PREFECT_WORKER_QUERY_SECONDS"] = f"{self.options.poll_seconds:g}"
        env["PREFECT_WORKER_PREFETCH_SECONDS"] = f"{max(self.options.poll_seconds, 1):g}"
        return env

    def start_worker(self, wait: bool = True) -> str:
        """One more rprp.worker on the pool; its name (cluster-worker-N). With `wait` False it
        returns at once (its service, in `workers`, says when it polls)."""
        self._worker_serial += 1
        name = f"cluster-worker-{self._worker_serial}"
        since = datetime.now(UTC)
        self.workers[name] = self._launch(Service(
            name, [sys.executable, "-m", "rprp.worker", "--pool", POOL, "--limit",
                   str(self.options.worker_limit), "--name", name],
            self._worker_env(),
            ready=lambda: worker_polling(self.api_url, name, since, self.auth_string)),
            wait=wait)
        return name

    def kill_worker(self, name: str) -> list[int]:
        """SIGKILL a worker and every process it started (its steps die mid-step); their pids."""
        service = self.workers.pop(name)
        from rprp.processes import descendants

        pids = [pid for pid, _ in descendants(service.process.pid)] if service.process else []
        self._kill(service)
        return pids

    def stop_worker(self, name: str) -> None:
        self._stop(self.workers.pop(name))

    def _start_portal(self, wait: bool = True) -> Service:
        self.portal = self._launch(Service(
            "portal", [sys.executable, "-m", "rprp.cli", "portal", "--host", LOOPBACK,
                       "--port", str(self.options.portal_port)],
            self.child_env(), ready=lambda: http_ok(f"{self.portal_url}/healthz")), wait=wait)
        return self.portal

    # -- stopping --------------------------------------------------------------------------------
    def _kill(self, service: Service | None) -> None:
        if service is None or service.process is None:
            return
        try:
            os.killpg(service.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        service.stop(timeout=5)  # reaps it, and SIGTERMs any descendant that left its group
        if service in self.services:
            self.services.remove(service)

    def _stop(self, service: Service | None) -> None:
        if service is None:
            return
        service.stop()
        if service in self.services:
            self.services.remove(service)

    def down(self) -> None:
        """Stop everything this cluster started, newest first; drop its databases if asked."""
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the rest whatever one does
                print(f"cluster: stopping {service.name}: {exc}", file=sys.stderr)
        self.workers.clear()
        if self.postgres_dir is not None:
            # The private server has stopped with the rest; its cluster goes with it.
            shutil.rmtree(self.postgres_dir, ignore_errors=True)
            self.postgres_dir = None
        elif self.options.drop_databases:
            try:
                from infra.db import engine_for

                engine_for(self.case_url).dispose()
            except Exception:  # noqa: BLE001
                pass
            for name in (self.case_database, self.prefect_database):
                try:
                    drop_database(self.postgres_url, name)
                except Exception as exc:  # noqa: BLE001
                    print(f"cluster: dropping {name}: {exc}", file=sys.stderr)

    def summary(self) -> str:
        rows = [
            ("Prefect API", f"{self.api_url} (HAProxy in front of {len(self.replicas)} "
                            f"replicas on ports {', '.join(map(str, self.replica_ports))})"),
            ("Services", "prefect server services start (one process)"),
            ("Prefect DB", f"PostgreSQL database {self.prefect_database}"),
            ("Case DB", f"PostgreSQL database {self.case_database}"),
            ("PostgreSQL", self.postgres_url.replace("postgresql://", "", 1)
             + (" (its own server)" if self.postgres else "")),
            ("Redis", self.redis_url + (" (its own redis-server)" if self.redis else "")),
            ("Workers", f"{len(self.workers)} x rprp.worker, up to "
                        f"{self.options.worker_limit} runs each"),
            ("Portal", self.portal_url if self.options.portal else "not started"),
            ("Decisions", f"{self.ui_url}/"),
            ("SMTP", f"{LOOPBACK}:{self.smtp_port} (sink: {self.mail_dir})"
             if self.use_mail_sink else os.environ.get("RPRP_SMTP_HOST", "")),
            ("Logs", str(self.log_dir)),
        ]
        width = max(len(name) for name, _ in rows)
        lines = ["", "The RPRP cluster is running. Ctrl-C stops everything it started.", ""]
        lines += [f"  {name:<{width}}  {where}" for name, where in rows]
        return "\n".join(lines + [""])


def options_from_environment(prefect_port: int, portal_port: int, portal: bool = True,
                             workers: int = 2, replicas: int = 2) -> ClusterOptions:
    """`rprp up --cluster`'s options: RPRP_CLUSTER_POSTGRES_URL and RPRP_CLUSTER_REDIS_URL
    point it at another PostgreSQL or Redis; its databases (`<RPRP_CLUSTER_DATABASE_PREFIX>_
    prefect` and `_cases`, default rprp_cluster) stay between runs."""
    return ClusterOptions(
        postgres_url=os.environ.get("RPRP_CLUSTER_POSTGRES_URL", "").strip()
        or DEFAULT_POSTGRES_URL,
        database_prefix=os.environ.get("RPRP_CLUSTER_DATABASE_PREFIX", "").strip()
        or "rprp_cluster",
        redis_url=os.environ.get("RPRP_CLUSTER_REDIS_URL", "").strip(),
        prefect_port=prefect_port, portal_port=portal_port, portal=portal,
        workers=workers, replicas=replicas)


def run_cluster(data_dir: Path, options: ClusterOptions, demo_users: bool = True) -> int:
    """Start the cluster, wait for Ctrl-C/SIGTERM (or a part dying), stop it; the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = Cluster(data_dir, options, stop)
    code = 0
    try:
        print("Starting the cluster (PostgreSQL, Redis, Prefect API replicas behind HAProxy, "
              "Prefect's services, workers, portal) ...", flush=True)
        cluster.up()
        if demo_users:
            from infra.settings import reset_settings
            from portal.users import demo_sign_ins_text, ensure_demo_users

            os.environ.update(cluster.client_env())
            reset_settings()
            ensure_demo_users()
            print("\n".join(["", *demo_sign_ins_text()]), flush=True)
        print(cluster.summary(), flush=True)
        while not stop.wait(1.0):
            dead = next((s for s in cluster.services if not s.running), None)
            if dead is not None:
                print(str(dead.failure("stopped unexpectedly")), file=sys.stderr, flush=True)
                code = 1
                break
    except StackError as exc:
        print(f"rprp up --cluster: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        print("\nStopping the cluster ...", flush=True)
        cluster.down()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
