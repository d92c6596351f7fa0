"""`rprp up`: the whole system on one machine, every part bound to 127.0.0.1.

In order: the Prefect server and UI, the case DB migrations, the work pool and deployments, a
local SMTP sink (when no SMTP server is configured), a process worker and the portal. Each part
is a child process in its own process group, logging to `<data dir>/logs/<name>.log`; the SMTP
sink runs in this process. `Stack.down()` stops them in reverse order, and only them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from rprp.mailsink import MailSink
from rprp.running import RunningStack, remove_state, write_state
from rprp.settings import PROJECT_ROOT, Settings

LOOPBACK = "127.0.0.1"
POOL = "rprp-pool"
WORKER_LIMIT = 4  # a process worker with no limit crashes runs on SQLite: "database is locked"
DEFAULT_PREFECT_PORT = 4200
PREFECT_AUTH_FILE = "prefect-api-auth.key"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says what to do about it."""


class Interrupted(StackError):
    """Ctrl-C (or SIGTERM) arrived while the stack was starting."""


# --- small helpers -------------------------------------------------------------------------------

def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def read_or_create_secret(path: Path, prefix: str = "") -> str:
    """A random secret kept in `path`, readable by this user only (`prefix` makes it a
    user:password pair, as HTTP basic auth and `curl -u` want)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(prefix + secrets.token_urlsafe(32))
    path.chmod(0o600)
    return path.read_text().strip()


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in text)


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid`: with the pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids of every live process, from /proc (Linux; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of every live descendant of `root`."""
    children = children_map()
    found: list[tuple[int, str]] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        started = _start_time(pid)
        if started is not None:
            found.append((pid, started))
            todo.extend(children.get(pid, []))
    return found


def _signal_if_same(pid: int, started: str, sig: int) -> bool:
    """Signal `pid` only if it is still the process we saw; True if it was still alive."""
    if _start_time(pid) != started:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


# --- one part of the stack -----------------------------------------------------------------------

@dataclass
class Service:
    """A child process: how to start it, and how to tell it is ready (None: alive is enough)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool] | None = None
    cwd: Path = PROJECT_ROOT
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def start(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        with self.log_path.open("ab") as log:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            log.write(f"\n===== {stamp} rprp up: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self, what: str) -> StackError:
        return StackError(f"{self.name} {what}; its log is {self.log_path}:\n{tail(self.log_path)}")

    def wait_ready(self, timeout: float, stop: threading.Event) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                code = self.process.returncode if self.process else None
                raise self.failure(f"exited with code {code}")
            if self.ready is None or self.ready():
                return
            if time.monotonic() > deadline:
                raise self.failure(f"was not ready after {timeout:.0f} s")
            if stop.wait(0.5):
                raise Interrupted("interrupted")

    def run_to_end(self, log_dir: Path, timeout: float, stop: threading.Event) -> None:
        """Run a one-shot step (migrations, deployments) and require exit code 0."""
        self.start(log_dir)
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline or stop.wait(0.2):
                self.stop()
                if stop.is_set():
                    raise Interrupted("interrupted")
                raise self.failure(f"did not finish in {timeout:.0f} s")
        if self.process.returncode != 0:
            raise self.failure(f"failed with exit code {self.process.returncode}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group (and any descendant that left it), then SIGKILL."""
        process = self.process
        if process is None:
            return
        family = descendants(process.pid) if process.poll() is None else []
        self._signal_all(signal.SIGTERM, family)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None and not any(_start_time(p) == s for p, s in family):
                break
            time.sleep(0.1)
        else:
            print(f"  {self.name} did not stop in {timeout:.0f} s: killing it", flush=True)
            self._signal_all(signal.SIGKILL, family)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def _signal_all(self, sig: int, family: list[tuple[int, str]]) -> None:
        process = self.process
        # The group id is the leader's pid (start_new_session); signal the group only while the
        # leader is unreaped, so the id cannot have passed to someone else's process group.
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        for pid, started in family:
            _signal_if_same(pid, started, sig)


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
    def prefect_database_url(self) -> str:
        url = self.options.prefect_database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.prefect_home / 'prefect.db'}"
        for plain in ("postgresql://", "postgres://"):  # Prefect's server needs asyncpg
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url[len(plain):]
        return url

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
        self._launch(server)
        # The schema upgrade runs while the server boots; both must succeed.
        self.say("Upgrading the case database ...")
        self._one_shot("migrate", [sys.executable, "-m", "rprp.cli", "migrate"], timeout=300)
        if self.options.demo_users:
            from portal.users import ensure_demo_users

            ensure_demo_users()
        server.wait_ready(self.options.ready_timeout, self.stop_event)
        self.say(f"  Prefect server ready ({server.log_path})")

        self.say(f"Creating work pool {POOL} and the deployments in prefect.yaml ...")
        self._one_shot("deploy", [sys.executable, str(PROJECT_ROOT / "deployments" / "deploy.py")],
                       timeout=300)

        if self.options.worker:
            worker = self._worker()
            self.say(f"Starting a process worker on {POOL} (limit {WORKER_LIMIT}) ...")
            self._launch(worker)
            worker.wait_ready(self.options.ready_timeout, self.stop_event)
        if self.options.portal:
            portal = self._portal()
            self.say(f"Starting the portal on {self.portal_url} ...")
            self._launch(portal)
            portal.wait_ready(self.options.ready_timeout, self.stop_event)
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
    def _prefect_server(self) -> Service:
        env = self.child_env()
        env.update({  # both spellings of each, so a stray one in the environment cannot win
            "PREFECT_API_DATABASE_CONNECTION_URL": self.prefect_database_url,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": self.prefect_database_url,
            "PREFECT_SERVER_API_AUTH_STRING": self.prefect_auth_string,
            "PREFECT_UI_SERVE_BASE": "/prefect",
            "PREFECT_SERVER_UI_SERVE_BASE": "/prefect",
            "PREFECT_UI_API_URL": self.ui_api_url,
            "PREFECT_SERVER_UI_API_URL": self.ui_api_url,
            "PREFECT_SERVER_API_HOST": LOOPBACK,
            "PREFECT_SERVER_API_PORT": str(self.options.prefect_port),
        })
        env.pop("PREFECT_API_URL")  # the server is the API: it must not look for another
        argv = [sys.executable, "-m", "prefect", "server", "start",
                "--host", LOOPBACK, "--port", str(self.options.prefect_port)]
        return Service("prefect-server", argv, env,
                       ready=lambda: http_ok(f"{self.api_url}/health"))

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
        database = self.prefect_database_url if self.options.prefect_database_url else "SQLite"
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
