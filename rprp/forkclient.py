"""The flow-run command `rprp.worker` gives Prefect: a stand-in process for one flow run.

Prefect's process worker starts a process per flow run, watches its pid and exit code, and
signals it to cancel. Starting `python -m prefect.engine` costs seconds of imports each step,
so this script (run with `python -I -S`: standard library only, about 20 ms) asks the worker's
fork server (rprp/forkserver.py) to fork the engine from a parent that has imported everything
already, hands it this process's stdin, stdout and stderr, environment and working directory,
passes on SIGTERM and SIGINT, and exits with the engine's exit code. If this process is killed,
the fork server sees its socket close and kills the engine too, so Prefect's view (one process
per run, which it may kill) stays true.

If there is no fork server (not started yet, restarting after a code change, or gone), it
becomes the stock engine (`exec python -m prefect.engine`): slower, never wrong.

Only the standard library may be imported here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

SOCKET_ENV = "RPRP_FORKSERVER_SOCKET"
HEADER = struct.Struct("!4sQ")
MAGIC = b"RPRP"


def _stock_engine() -> None:
    python = os.environ.get("RPRP_FORKSERVER_PYTHON") or sys.executable
    os.execv(python, [python, "-m", "prefect.engine", *sys.argv[1:]])


def _read_line(conn: socket.socket, buffer: bytearray) -> str | None:
    while b"\n" not in buffer:
        try:
            chunk = conn.recv(256)
        except InterruptedError:
            continue
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def main() -> int:
    path = os.environ.get(SOCKET_ENV, "")
    if not path:
        _stock_engine()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        payload = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(),
                              "argv": sys.argv[1:]}).encode()
        socket.send_fds(conn, [HEADER.pack(MAGIC, len(payload))], [0, 1, 2])
        conn.sendall(payload)
    except OSError:
        conn.close()
        _stock_engine()
    buffer = bytearray()
    first = _read_line(conn, buffer)
    if first is None or not first.startswith("PID "):
        conn.close()
        _stock_engine()
        return 1  # not reached
    pid = int(first.removeprefix("PID "))

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    line = _read_line(conn, buffer)
    if line is None or not line.startswith("EXIT "):
        return 1  # the fork server went away: the engine went with it
    return int(line.removeprefix("EXIT "))


if __name__ == "__main__":
    sys.exit(main())
