"""The worker's fork server (rprp/forkserver.py) and its stand-in (rprp/forkclient.py), as
Prefect's process worker uses them: a process per flow run, its exit code, its signals.

The engine here is pointed at an API that accepts connections and never answers, so a forked
engine stays alive (waiting to read its flow run) for as long as the test needs to look at it.
The whole path through a real Prefect server and worker is every other integration test: the
test stack's worker forks its runs this way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rprp.forkserver import changed
from rprp.worker import FORK_COMMAND

ROOT = Path(__file__).resolve().parents[2]
CEILING = 120.0


def _until(condition, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + CEILING
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


@pytest.fixture
def api_listener() -> Iterator[socket.socket]:
    """An address that takes connections and answers nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


@pytest.fixture
def silent_api(api_listener: socket.socket) -> str:
    return f"http://127.0.0.1:{api_listener.getsockname()[1]}/api"


@pytest.fixture(scope="module")
def fork_server(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """One fork server for the module: it preloads the flows for seconds. Each test waits for
    its own engine to end, so the next finds the server with no child."""
    path = str(tmp_path_factory.mktemp("forkserver") / "fork.sock")
    server = subprocess.Popen([sys.executable, "-m", "rprp.forkserver", "--socket", path],
                              cwd=ROOT, stdin=subprocess.DEVNULL)
    _until(lambda: os.path.exists(path) or server.poll() is not None, "the fork server")
    assert server.poll() is None, "the fork server exited at start"
    yield server, path
    server.terminate()
    server.wait(timeout=30)


def _stand_in(path: str, api: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, RPRP_FORKSERVER_SOCKET=path, PREFECT_API_URL=api,
               RPRP_FORKSERVER_PYTHON=sys.executable,
               PREFECT__FLOW_RUN_ID="00000000-0000-4000-8000-000000000001")
    return subprocess.Popen([*FORK_COMMAND.split(), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _engine_of(server: subprocess.Popen[bytes]) -> int:
    """The one flow run the server forked (each test has one stand-in, and the one before it
    saw its own engine end)."""
    found: list[int] = _until(lambda: _children(server.pid), "the forked engine")
    return found[0]


def test_the_engine_is_forked_from_the_server_with_the_stand_ins_environment(
        fork_server, api_listener, silent_api) -> None:  # type: ignore[no-untyped-def]
    server, path = fork_server
    stand_in = _stand_in(path, silent_api)
    engine = _engine_of(server)
    assert engine != stand_in.pid and engine not in _children(stand_in.pid)
    api_listener.settimeout(CEILING)
    connection, _ = api_listener.accept()  # the engine asks the stand-in's API for its run
    connection.close()
    stand_in.send_signal(signal.SIGTERM)  # Prefect's worker cancelling the run
    stand_in.wait(timeout=CEILING)
    _until(lambda: engine not in _children(server.pid), "the engine to end on SIGTERM")


def test_an_engine_s_exit_code_and_output_come_back_through_the_stand_in(
        fork_server, silent_api) -> None:  # type: ignore[no-untyped-def]
    server, path = fork_server
    stand_in = _stand_in(path, silent_api, "not-a-flow-run-id")
    _, err = stand_in.communicate(timeout=CEILING)
    assert stand_in.returncode == 1
    assert "Invalid flow run id" in err
    _until(lambda: not _children(server.pid), "the engine to be gone from the server")


def test_killing_the_stand_in_kills_its_engine(fork_server, silent_api) -> None:  # type: ignore[no-untyped-def]
    server, path = fork_server
    stand_in = _stand_in(path, silent_api)
    engine = _engine_of(server)
    stand_in.kill()  # as a crash of the worker, or its hard kill, would
    stand_in.wait(timeout=CEILING)
    _until(lambda: engine not in _children(server.pid), "the orphaned engine to be killed")
    assert server.poll() is None, "the fork server keeps serving"


def test_with_no_fork_server_the_stand_in_is_the_stock_engine(tmp_path: Path,
                                                               silent_api: str) -> None:
    stand_in = _stand_in(str(tmp_path / "absent.sock"), silent_api, "not-a-flow-run-id")
    _, err = stand_in.communicate(timeout=CEILING)
    assert stand_in.returncode == 1
    assert "Invalid flow run id" in err


def test_a_source_file_changed_on_disk_makes_the_server_stale(tmp_path: Path) -> None:
    source = tmp_path / "step.py"
    source.write_text("x = 1\n")
    seen = {str(source): source.stat().st_mtime}
    assert not changed(seen)
    os.utime(source, (time.time(), seen[str(source)] + 5))
    assert changed(seen)
    source.unlink()
    assert changed(seen)
