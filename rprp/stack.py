"""`rprp up`: the whole system on one machine, every part bound to 127.0.0.1.

In order: the Prefect server and UI, the case DB migrations, the work pool and deployments, a
local SMTP sink (when no SMTP server is configured), a process worker and the portal. Each part
is a child process in its own process group, logging to `<data dir>/logs/<name>.log`; the SMTP
sink runs in this process. `Stack.down()` stops them in reverse order, and only them.

The Prefect server and the deployments are started and registered as the tests and the bench do
(rprp.prefect_server); the child processes are rprp.processes's.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import signal
import socket
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from infra.mailsink import MailSink
from infra.settings import PROJECT_ROOT, Settings
from rprp.prefect_server import POOL, PrefectServer, asyncpg_url
from rprp.processes import LOOPBACK, Interrupted, Service, StackError, http_ok, port_is_free
from rprp.running import RunningStack, remove_state, write_state

WORKER_LIMIT = 4  # a process worker with no limit crashes runs on SQLite: "database is locked"
DEFAULT_PREFECT_PORT = 4200
PREFECT_AUTH_FILE = "prefect-api-auth.key"


def read_or_create_secret(path: Path, prefix: str = "") -> str:
    """A random secret kept in `path`, readable by this user only (`prefix` makes it a
    user:password pair, as HTTP basic auth and `curl -u` want)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(prefix + secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()



# --- the whole stack -----------------------------------------------------------------------------

@dataclass
class StackOptions:
    prefect_port: int = DEFAULT_PREFECT_PORT
    portal_port: int = 8000
    worker: bool = True
    portal: bool = True
    prefect_database_url: str = ""  # default: SQLite under <data dir>/prefect
    ready_timeout: float = 180.0
    host: str = LOOPBACK  # where the portal listens; the rest stays on loopback
    demo_users: bool = True


class Stack:
    """Starts the parts in order, prints where they are, and stops them in reverse order."""

    def __init__(self, settings: Settings, options: StackOptions,
                 stop: threading.Event | None = None, out: IO[str] | None = None) -> None:
        self.settings = settings
        self.options = options
        self.stop_event = stop or threading.Event()
        self.out = out or sys.stdout
        self.data_dir = settings.resolved_data_dir
        self.log_dir = self.data_dir / "logs"
        self.prefect_home = self.data_dir / "prefect"
        self.mail_dir = self.data_dir / "mail"
        self.services: list[Service] = []  # started, in order
        self.mail_sink: MailSink | None = None
        self._lock: IO[str] | None = None
        self._wrote_state = False  # <data dir>/stack.json: how other commands find this stack
        self.use_mail_sink = not settings.smtp_host

    # where things are
    @property
    def prefect_url(self) -> str:
        return f"http://{LOOPBACK}:{self.options.prefect_port}"

    @property
    def api_url(self) -> str:
        return f"{self.prefect_url}/api"

    @property
    def portal_url(self) -> str:
        return f"http://{LOOPBACK}:{self.options.portal_port}"

    @property
    def ui_url(self) -> str:
        """Where people open the Prefect UI: through the portal's gateway, signed in."""
        base = self.portal_url if self.options.portal else self.prefect_url
        return f"{base}/prefect"

    @property
    def prefect_auth_string(self) -> str:
        """The Prefect server's credentials: PREFECT_SERVER_API_AUTH_STRING if set, else a
        secret generated once into the data dir (0600), shared by the workers, the portal and
        the sweep; browsers never see it (the gateway presents it for them)."""
        given = os.environ.get("PREFECT_SERVER_API_AUTH_STRING", "")
        if given:
            return given
        return read_or_create_secret(self.data_dir / PREFECT_AUTH_FILE, prefix="rprp:")

    @property
    def ui_api_url(self) -> str:
        return f"{self.portal_url}/prefect/api" if self.options.portal else self.api_url

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def child_env(self) -> dict[str, str]:
        """What every child sees: this environment, made explicit for the local stack."""
        env = dict(os.environ)
        env.update({
            "RPRP_DATA_DIR": str(self.data_dir),  # absolute: children run in the project root
            "RPRP_PORTAL_HOST": LOOPBACK,
            "RPRP_PORTAL_PORT": str(self.options.portal_port),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_URL": self.ui_url,
            "PREFECT_HOME": str(self.prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
            "PWD": str(PROJECT_ROOT),
        })
        # Prefect's SDK telemetry waits seconds per process for a network it may not have.
        env.setdefault("DO_NOT_TRACK", "1")
        env.setdefault("RPRP_PORTAL_URL", self.portal_url)
        # The server answers only with its credentials; every client here presents them.
        env["PREFECT_API_AUTH_STRING"] = self.prefect_auth_string
        env.setdefault("RPRP_PREFECT_UI_URL", self.ui_url)
        if self.use_mail_sink:
            env["RPRP_SMTP_HOST"] = LOOPBACK
            env["RPRP_SMTP_PORT"] = str(self.mail_sink.port if self.mail_sink
                                        else self.settings.smtp_port)
        return env

    # starting
    def up(self) -> None:
        self._take_lock()
        self._check_ports()
        for directory in (self.log_dir, self.prefect_home, self.mail_dir):
            directory.mkdir(parents=True, exist_ok=True)
        if self.use_mail_sink:
            self._start_mail_sink()

        server = self._prefect_server()
        self.say(f"Starting the Prefect server on {self.prefect_url} ...")
        self.services.append(server.launch())
        # The schema upgrade runs while the server boots; both must succeed.
        self.say("Upgrading the case database ...")
        self._one_shot("migrate", [sys.executable, "-m", "rprp.cli", "migrate"], timeout=300)
        if self.options.demo_users:
            from portal.users import ensure_demo_users

            ensure_demo_users()
        server.wait_ready(self.options.ready_timeout, self.stop_event)
        self.say(f"  Prefect server ready ({server.log_path})")

        self.say(f"Creating work pool {POOL} and the deployments in prefect.yaml ...")
        server.register_deployments(self.child_env(), timeout=300, stop=self.stop_event)

        # The worker and the portal start together: each spends seconds importing Prefect.
        starting: list[Service] = []
        if self.options.worker:
            worker = self._worker()
            self.say(f"Starting a process worker on {POOL} (limit {WORKER_LIMIT}) ...")
            self._launch(worker)
            starting.append(worker)
        if self.options.portal:
            portal = self._portal()
            self.say(f"Starting the portal on {self.portal_url} ...")
            self._launch(portal)
            starting.append(portal)
        for service in starting:
            service.wait_ready(self.options.ready_timeout, self.stop_event)
        env = self.child_env()
        write_state(self.data_dir, RunningStack(
            pid=os.getpid(), prefect_api_url=self.api_url,
            prefect_ui_url=env["RPRP_PREFECT_UI_URL"], portal_url=env["RPRP_PORTAL_URL"]))
        self._wrote_state = True

    def _take_lock(self) -> None:
        path = self.data_dir / "rprp-up.lock"
        lock = path.open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            lock.close()
            raise StackError(f"another `rprp up` ({holder}) is already using {self.data_dir}; "
                             "stop it first, or use another RPRP_DATA_DIR") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        self._lock = lock

    def _check_ports(self) -> None:
        wanted = [("Prefect server", self.options.prefect_port,
                   "--prefect-port or RPRP_PREFECT_PORT")]
        if self.options.portal:
            wanted.append(("portal", self.options.portal_port, "--portal-port or RPRP_PORTAL_PORT"))
        if self.use_mail_sink:
            wanted.append(("SMTP sink", self.settings.smtp_port, "RPRP_SMTP_PORT"))
        ports = [port for _, port, _ in wanted]
        for name, port, how in wanted:
            if ports.count(port) > 1:
                raise StackError(f"port {port} is asked for twice; give the {name} another ({how})")
            if not port_is_free(port):
                raise StackError(f"port {port} on {LOOPBACK} (for the {name}) is already in use: "
                                 f"stop what is using it, or choose another port with {how}")

    def _start_mail_sink(self) -> None:
        sink = MailSink(self.mail_dir, port=self.settings.smtp_port, host=LOOPBACK)
        try:
            sink.start()
        except Exception as exc:  # aiosmtpd raises several kinds on a failed bind
            raise StackError(f"the SMTP sink could not start on {LOOPBACK}:"
                             f"{self.settings.smtp_port}: {exc}") from exc
        self.mail_sink = sink

    def _launch(self, service: Service) -> None:
        self.services.append(service)
        service.start(self.log_dir)

    def _one_shot(self, name: str, argv: list[str], timeout: float) -> None:
        step = Service(name, argv, self.child_env())
        step.run_to_end(self.log_dir, timeout, self.stop_event)

    # the parts
    def _prefect_server(self) -> PrefectServer:
        """Prefect with the UI under /prefect, called through the portal's gateway, and its
        database under the data dir (or the one given), so cases survive a restart."""
        return PrefectServer(
            home=self.prefect_home, log_dir=self.log_dir, port=self.options.prefect_port,
            database_url=self.options.prefect_database_url,
            auth_string=self.prefect_auth_string, ui_api_url=self.ui_api_url,
            base_env=self.child_env())

    def _worker(self) -> Service:
        env = self.child_env()
        env["PREFECT_WORKER_QUERY_SECONDS"] = "2"  # resumed runs wait for the worker's poll
        # rprp.worker is Prefect's process worker with a fix for fast resumes (see its docstring).
        argv = [sys.executable, "-m", "rprp.worker", "--pool", POOL,
                "--limit", str(WORKER_LIMIT), "--name", f"rprp-up-{socket.gethostname()}"]
        return Service("worker", argv, env, ready=self._pool_is_ready)

    def _pool_is_ready(self) -> bool:
        """The pool turns READY when a worker's first heartbeat arrives."""
        request = urllib.request.Request(f"{self.api_url}/work_pools/{POOL}")
        auth = self.child_env().get("PREFECT_API_AUTH_STRING")
        if auth:
            token = base64.b64encode(auth.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(json.load(response).get("status") == "READY")
        except (OSError, ValueError):
            return False

    def _portal(self) -> Service:
        argv = [sys.executable, "-m", "rprp.cli", "portal",
                "--host", self.options.host, "--port", str(self.options.portal_port)]
        return Service("portal", argv, self.child_env(),
                       ready=lambda: http_ok(f"{self.portal_url}/healthz"))

    # running
    def summary(self) -> str:
        rows = [
            ("Decisions", f"{self.ui_url}/ (the Prefect UI: sign in to the portal; managers "
                          "decide here)"),
            ("Prefect API", f"{self.api_url} (loopback, with the credentials in "
                            f"{self.data_dir / PREFECT_AUTH_FILE})"),
        ]
        if self.options.portal:
            rows += [("Portal", self.portal_url), ("Outbox", f"{self.portal_url}/outbox")]
        else:
            rows += [("Portal", "not started (--no-portal)")]
        if self.mail_sink is not None:
            rows.append(("SMTP", f"{LOOPBACK}:{self.mail_sink.port} (local sink: keeps every "
                                  f"message in {self.mail_dir})"))
        else:
            rows.append(("SMTP", f"{self.settings.smtp_host}:{self.settings.smtp_port}"))
        rows.append(("Worker", f"pool {POOL}, up to {WORKER_LIMIT} runs at once"
                     if self.options.worker else "not started (--no-worker)"))
        database = asyncpg_url(self.options.prefect_database_url) or "SQLite"
        rows += [
            ("Case DB", _hide_password(self.settings.case_database_url)),
            ("Prefect DB", _hide_password(database)),
            ("Data dir", str(self.data_dir)),
            ("Logs", str(self.log_dir)),
        ]
        width = max(len(name) for name, _ in rows)
        lines = ["", "RPRP is running. Ctrl-C stops everything it started.", ""]
        lines += [f"  {name:<{width}}  {where}" for name, where in rows]
        if self.options.portal and self.options.demo_users:
            from portal.users import demo_sign_ins_text

            lines += [""] + [f"  {line}" for line in demo_sign_ins_text()]
        return "\n".join(lines + [""])

    def dead_service(self) -> Service | None:
        return next((s for s in self.services if not s.running), None)

    def down(self) -> None:
        """Stop everything this stack started, newest first; safe to call more than once."""
        while self.services:
            service = self.services.pop()
            if service.process is not None:
                self.say(f"Stopping {service.name} ...")
                service.stop()
        if self.mail_sink is not None:
            self.say("Stopping the SMTP sink ...")
            self.mail_sink.stop()
            self.mail_sink = None
        if self._wrote_state:
            remove_state(self.data_dir, os.getpid())
            self._wrote_state = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _hide_password(url: str) -> str:
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def run_stack(settings: Settings, options: StackOptions) -> int:
    """Start the stack, wait for Ctrl-C/SIGTERM (or a part dying), stop it; the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack(settings, options, stop)
    code = 0
    try:
        stack.up()
        stack.say(stack.summary())
        while not stop.wait(1.0):
            dead = stack.dead_service()
            if dead is not None:
                stack.say(str(dead.failure(f"stopped unexpectedly (exit code "
                                           f"{dead.process.returncode if dead.process else '?'})")))
                code = 1
                break
    except Interrupted:
        pass
    except StackError as exc:
        print(f"rprp up: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        if stack.services or stack.mail_sink is not None:
            stack.say("\nStopping ...")
            stack.down()
            stack.say("Stopped." if code == 0 else "Stopped after an error.")
        stack.down()  # releases the data dir lock
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
