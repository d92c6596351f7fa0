"""Child processes the local stacks run (`rprp up`, the tests, the bench): each in its own
process group, logging to a file, stopped with everything it started and only that.

A process is named by its pid and its kernel start time together, so a pid reused by someone
else's process after ours exited is never signalled.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from infra.settings import PROJECT_ROOT

LOOPBACK = "127.0.0.1"


class StackError(RuntimeError):
    """A part of the stack could not start; the message says what to do about it."""


class Interrupted(StackError):
    """Ctrl-C (or SIGTERM) arrived while the stack was starting."""


# --- small helpers -------------------------------------------------------------------------------

def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind `port` now (checked before starting, to say which is taken)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel says is free on loopback, for a server started in a moment."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 2xx: a service's readiness check."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False


def tcp_open(port: int, host: str = LOOPBACK) -> bool:
    """Whether something accepts connections on `port`: a server without an HTTP health check
    (an SMTP sink, Redis) is ready."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def tail(path: Path | None, lines: int = 15) -> str:
    """The end of a log, indented, to quote in an error message."""
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


def flow_processes(worker_pid: int) -> list[int]:
    """The live flow run processes under `rprp.worker`: all its descendants but its fork server
    (rprp/forkserver.py), which waits between runs. The runs forked from that server share its
    command line, so only the outermost process with it is left out."""
    children = children_map()
    found: list[int] = []
    todo = [(pid, False) for pid in children.get(worker_pid, [])]
    while todo:
        pid, under_server = todo.pop()
        server = not under_server and b"rprp.forkserver" in _cmdline(pid)
        if not server:
            found.append(pid)
        todo.extend((child, under_server or server) for child in children.get(pid, []))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


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
    # Run as this user (PostgreSQL's server refuses to run as root); None: as we are.
    user: str | None = None
    # What asks it to stop: SIGTERM, or SIGINT for PostgreSQL (its "fast" shutdown; SIGTERM
    # there waits for every client to leave).
    stop_signal: int = signal.SIGTERM

    def start(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.name}.log"
        with self.log_path.open("ab") as log:
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            log.write(f"\n===== {stamp} {self.name}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, user=self.user)

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
        """SIGTERM (or `stop_signal`) the process group and any descendant that left it, then
        SIGKILL."""
        process = self.process
        if process is None:
            return
        family = descendants(process.pid) if process.poll() is None else []
        self._signal_all(self.stop_signal, family)
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


