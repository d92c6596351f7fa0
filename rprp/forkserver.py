"""`python -m rprp.forkserver`: the pre-imported parent that `rprp.worker` forks flow runs from.

Each step of a case is a new flow run process. Started fresh (`python -m prefect.engine`) it
spends seconds importing Prefect's engine and the project's modules before it does a few
milliseconds of work. This server imports all of that once, then, for each flow run the worker
starts, forks a child that takes the stand-in process's stdin, stdout, stderr, environment and
working directory (rprp/forkclient.py) and runs Prefect's engine as `python -m prefect.engine`
would. Each run still has its own process (a crash or a leak in one cannot touch another),
Prefect still sees a pid it can signal and an exit code, and nothing of one run survives into
the next: the parent never runs a flow, never opens a database or a connection, and starts no
thread, so what a child inherits is imported code only.

Code that changes on disk is never run stale: before each fork the server checks the project's
source files it imported; if one changed it refuses the request (the stand-in runs the stock
engine) and exits, and the worker starts a new server with the new code.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from rprp.forkclient import HEADER, MAGIC

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("flows", "tasks", "models", "infra")
PRELOAD = ("prefect.flow_engine", "prefect.task_engine", "prefect.flow_runs",
           "prefect.deployments.steps", "prefect.runner.storage", "prefect.cache_policies",
           "prefect.client.orchestration", "prefect._internal.control_listener")


def preload() -> None:
    """Import Prefect's engine and every flow module of the project (and so their tasks)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    for name in PRELOAD:
        importlib.import_module(name)
    for path in sorted((ROOT / "flows").glob("*.py")):
        if path.stem != "__init__":
            importlib.import_module(f"flows.{path.stem}")


# Imported lazily by the first flow run that needs them, so once per step unless done here.
WARM_IMPORTS = ("anyio._backends._asyncio", "prefect.utilities.visualization", "certifi",
                "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql", "psycopg")


def warm() -> None:
    """Do once, here, the lazy work every forked flow run would otherwise repeat. Each item was
    seen costing 0.05-0.2 s in a pyinstrument profile of a forked engine; the bench's figure 8
    showed a smaller, noisy gain overall (README).

    Nothing here opens a connection or starts a thread: SQLAlchemy configures its mappers,
    the database drivers and anyio's asyncio backend are imported, the email templates are
    compiled, Prefect's API clients share one TLS context per CA file, and the heap so far is
    frozen out of the garbage collector's scans.
    """
    for name in WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    from sqlalchemy.orm import configure_mappers

    configure_mappers()
    from tasks.outbox import compile_templates

    compile_templates()
    share_tls_contexts()
    # What is imported by now lives as long as every child: freeze it out of the garbage
    # collector's view, so a child's collections scan only what the child made (a full
    # collection over the imported heap was a tenth of a second, at random points of a step)
    # and leave the inherited pages shared rather than copied.
    gc.collect()
    gc.freeze()


def share_tls_contexts() -> None:
    """Prefect builds a new TLS context for every API client it opens, reading the whole CA
    bundle each time (50-60 ms, several clients per flow run), even when the API is plain
    http on loopback. Within a process one verifying context per CA file serves them all, as
    one would for any HTTP client; the context for certifi's bundle is built here, before the
    fork, so children inherit it. Only Prefect's client module sees the shared contexts, and
    only for verifying contexts from a CA file: an insecure one (PREFECT_API_TLS_INSECURE_
    SKIP_VERIFY), which Prefect then alters, is still made fresh each time.
    """
    import ssl
    import types
    from functools import lru_cache

    import certifi
    import prefect.client.orchestration as orchestration

    if isinstance(getattr(orchestration, "ssl", None), types.SimpleNamespace):
        return  # shared already
    original = ssl.create_default_context

    @lru_cache(maxsize=8)
    def verifying(cafile: str) -> ssl.SSLContext:
        return original(cafile=cafile)

    def create_default_context(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, *,
                               cafile: str | None = None, capath: str | None = None,
                               cadata: str | bytes | None = None) -> ssl.SSLContext:
        if cafile and purpose is ssl.Purpose.SERVER_AUTH and capath is None and cadata is None:
            return verifying(str(cafile))
        return original(purpose, cafile=cafile, capath=capath, cadata=cadata)

    shared = types.SimpleNamespace(**vars(ssl))
    shared.create_default_context = create_default_context
    setattr(orchestration, "ssl", shared)  # noqa: B010  (the name Prefect's code looks up)
    verifying(certifi.where())


def project_sources() -> dict[str, float]:
    """The project's source files imported here, with their modification times."""
    sources: dict[str, float] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file)
        try:
            relative = path.resolve().relative_to(ROOT)
        except ValueError:
            continue
        if relative.parts and relative.parts[0] in PROJECT_PACKAGES + ("rprp",):
            with contextlib.suppress(OSError):
                sources[str(path)] = path.stat().st_mtime
    return sources


def changed(sources: dict[str, float]) -> bool:
    for path, mtime in sources.items():
        try:
            if os.stat(path).st_mtime != mtime:
                return True
        except OSError:
            return True
    return False


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(min(65536, size - len(data)))
        if not chunk:
            raise ConnectionError("the stand-in closed before it sent its request")
        data.extend(chunk)
    return bytes(data)


@dataclass
class Server:
    listener: socket.socket
    path: Path
    sources: dict[str, float]
    parent: int
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    runs: dict[int, socket.socket] = field(default_factory=dict)  # child pid -> its stand-in
    stopping: bool = False

    def serve(self) -> None:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        while not (self.stopping and not self.runs):
            for key, _ in self.selector.select(timeout=0.2):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._stand_in_gone(key.fileobj)  # type: ignore[arg-type]
            self._reap()
            if os.getppid() != self.parent:  # the worker died: take nothing new
                self._stop_listening()

    def _stop_listening(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.selector.unregister(self.listener)
            self.listener.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # stand-ins arriving now run the stock engine

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(True)
        conn.settimeout(10)
        try:
            header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
            magic, size = HEADER.unpack(header)
            if magic != MAGIC or len(fds) != 3:
                raise ConnectionError("not a flow run request")
            request = json.loads(_recv_exact(conn, size))
        except (OSError, ValueError, ConnectionError, KeyError) as exc:
            print(f"rprp.forkserver: refused a request: {exc}", file=sys.stderr)
            conn.close()
            return
        try:
            if changed(self.sources):
                conn.sendall(b"STALE\n")
                conn.close()
                print("rprp.forkserver: the code changed on disk; exiting so the worker "
                      "starts a new fork server", file=sys.stderr)
                self._stop_listening()
                return
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                self._child(conn, fds, request)
            self.runs[pid] = conn
            conn.sendall(f"PID {pid}\n".encode())
            conn.settimeout(None)
            self.selector.register(conn, selectors.EVENT_READ)
        finally:
            for fd in fds:
                os.close(fd)

    def _child(self, conn: socket.socket, fds: list[int], request: dict[str, object]) -> None:
        """In the forked child: become `python -m prefect.engine` for this flow run."""
        code = 1
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            self.selector.close()
            self.listener.close()
            for other in self.runs.values():
                other.close()
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(str(request["cwd"]))
            env = request["env"]
            assert isinstance(env, dict)
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
            argv = request.get("argv") or []
            assert isinstance(argv, list)
            sys.argv = [str(Path(runpy.__file__)), *map(str, argv)]
            from prefect.context import refresh_global_settings_context

            refresh_global_settings_context()
            from infra.settings import reset_settings

            reset_settings()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # "found in sys.modules"
                runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except BaseException:  # noqa: BLE001  (the engine's own last resort, as a process's)
            traceback.print_exc()
            code = 1
        finally:
            # What the interpreter does at exit, which os._exit skips: Prefect's exit hooks
            # (threading's, then atexit's) drain its services, which send the run's last logs
            # ("Finished in state ...") and events to the API.
            with contextlib.suppress(BaseException):
                threading._shutdown()  # type: ignore[attr-defined]
            with contextlib.suppress(BaseException):
                atexit._run_exitfuncs()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _stand_in_gone(self, conn: socket.socket) -> None:
        """The stand-in closed its end: Prefect killed it, so its engine goes too."""
        with contextlib.suppress(OSError):
            if conn.recv(64):
                return  # nothing is expected from a stand-in; ignore it
        self.selector.unregister(conn)
        for pid, known in list(self.runs.items()):
            if known is conn:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _reap(self) -> None:
        while self.runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.runs.pop(pid, None)
            if conn is None:
                continue
            with contextlib.suppress(OSError):
                conn.sendall(f"EXIT {os.waitstatus_to_exitcode(status)}\n".encode())
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(conn)
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rprp.forkserver", description=__doc__)
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    args = parser.parse_args(argv)
    parent = os.getppid()
    preload()
    warm()
    if threading.active_count() > 1:
        print("rprp.forkserver: an import started a thread; forking would be unsafe, so the "
              "worker runs the stock engine", file=sys.stderr)
        return 1
    sources = project_sources()
    path = Path(args.socket)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    server = Server(listener, path, sources, parent)
    signal.signal(signal.SIGTERM, lambda *_: server._stop_listening())
    try:
        server.serve()
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
