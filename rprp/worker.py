"""`python -m rprp.worker`: Prefect's process worker, with one fix for fast resumes and one
for the cost of each step.

Prefect 3.8's worker crashes ("this borrower is already holding one of this CapacityLimiter's
tokens") when a suspended run is resumed before the worker has released the slot of the process
that just suspended it. With `--limit` (needed on a SQLite Prefect database) that happens as soon
as a person answers within a second or two. This worker leaves such a run until the slot is free,
and polls again at that moment.

Prefect 3.8's worker also starts every flow run through a "workspace supervisor": a Python
process that imports Prefect (3-4 s on a small machine) only to exec a second one, the engine,
which imports it again. A case resumes about eight times in its life, so this worker starts the
engine directly (`<this python> -m prefect.engine`, Prefect's own path when a pool or deployment
sets `command`); the engine still runs the deployment's pull steps. A `command` set on the pool
or a deployment still wins.

And it starts no interpreter per step at all where it can: it keeps a fork server
(rprp/forkserver.py), a parent that has imported Prefect's engine and the project's flows once,
and gives Prefect as each run's command a stand-in (rprp/forkclient.py, standard library only)
that has the engine forked from it. Each run is still its own process that Prefect can watch and
kill. `--no-fork` (or RPRP_WORKER_FORK=0) turns this off; a stock `prefect worker start` runs
the same deployments, only slower.

Finally, it does not wait for its next poll to find a run that has just been scheduled (a
person pressed Resume, the portal woke a case, a referral arrived): it follows the Prefect
server's event stream and polls at once when a flow run is Scheduled or Resuming. The poll on
its interval stays as the safety net for anything the stream misses.
"""

from __future__ import annotations

import os

# Prefect's SDK telemetry waits on a network this deployment may not have: each flow process
# would spend seconds at import. Flow processes inherit this from the worker.
os.environ.setdefault("DO_NOT_TRACK", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import logging  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from prefect.workers.process import ProcessJobConfiguration, ProcessWorker  # noqa: E402

# Same pool type as Prefect's process worker, on purpose: it replaces it in this process only.
warnings.filterwarnings("ignore", message="Type 'RprpProcessWorker'")


ENGINE_COMMAND = shlex.join([sys.executable, "-m", "prefect.engine"])
FORK_COMMAND = shlex.join([sys.executable, "-I", "-S",
                           str(Path(__file__).with_name("forkclient.py"))])
SOCKET_ENV = "RPRP_FORKSERVER_SOCKET"


class ForkServer:
    """The worker's fork server process: started with the worker, started again when it has
    exited (after a code change on disk), stopped with the worker."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="rprp-fork-"))
        os.chmod(self.directory, 0o700)
        self.process: subprocess.Popen[bytes] | None = None
        self.socket = ""

    def ensure(self) -> str:
        """The socket of a running fork server (starting one if there is none). A stand-in that
        finds it not listening yet runs the stock engine, so this never waits."""
        if self.process is None or self.process.poll() is not None:
            self.socket = str(self.directory / f"{uuid.uuid4().hex[:12]}.sock")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rprp.forkserver", "--socket", self.socket],
                stdin=subprocess.DEVNULL, cwd=Path(__file__).resolve().parent.parent)
        return self.socket

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


FORKS: ForkServer | None = None


def _forking() -> bool:
    return os.environ.get("RPRP_WORKER_FORK", "1").strip().lower() not in ("0", "false", "no")


SET_WORKING_DIRECTORY = ("prefect.deployments.steps.set_working_directory",
                         "prefect.deployments.steps.pull.set_working_directory")
ENTRYPOINT_ENV = "PREFECT__FLOW_ENTRYPOINT"


def direct_entrypoint(deployment: Any) -> tuple[Path, str] | None:
    """(directory, entrypoint) for a deployment whose only pull step sets the working directory
    to a directory that exists here, as prefect.yaml's do; otherwise None.

    For such a deployment the engine need not read the deployment and run its pull step (a
    third of a second of API calls and logs per step): the worker starts the run in that
    directory with Prefect's own PREFECT__FLOW_ENTRYPOINT, which the engine then imports the
    flow from, as Prefect's runner does. Any other pull step (a clone, a download) still runs.
    The entrypoint is given as a module path where it can be (`as_module_entrypoint`).
    """
    entrypoint = getattr(deployment, "entrypoint", None)
    pull_steps = getattr(deployment, "pull_steps", None) or []
    if not isinstance(entrypoint, str) or ":" not in entrypoint or len(pull_steps) != 1:
        return None
    only = pull_steps[0]
    if not isinstance(only, dict) or len(only) != 1:
        return None
    [(name, arguments)] = only.items()
    if name not in SET_WORKING_DIRECTORY or not isinstance(arguments, dict) or \
            set(arguments) != {"directory"}:
        return None
    directory = arguments["directory"]
    if not isinstance(directory, str) or "{{" in directory or not Path(directory).is_dir():
        return None
    return Path(directory), as_module_entrypoint(Path(directory), entrypoint)


def as_module_entrypoint(directory: Path, entrypoint: str) -> str:
    """`flows/case_lifecycle.py:rprp_case` as `flows.case_lifecycle:rprp_case` where the file is
    a module of a package in `directory`: Prefect then imports it (the fork server's copy, already
    imported) instead of executing the file again as a second module of its own."""
    path, name = entrypoint.rsplit(":", 1)
    relative = Path(path)
    if relative.is_absolute() or relative.suffix != ".py" or ".." in relative.parts or \
            not relative.parent.parts or not (directory / relative).is_file():
        return entrypoint
    packages = [directory.joinpath(*relative.parent.parts[:i + 1])
                for i in range(len(relative.parent.parts))]
    if not all((package / "__init__.py").is_file() for package in packages) or \
            not all(part.isidentifier() for part in (*relative.parent.parts, relative.stem)):
        return entrypoint
    return ".".join((*relative.parent.parts, relative.stem)) + ":" + name


class RprpJobConfiguration(ProcessJobConfiguration):
    def prepare_for_flow_run(self, *args: Any, **kwargs: Any) -> None:
        if self.command is None:
            if FORKS is not None:
                self.command = FORK_COMMAND
                self.env = {**self.env, SOCKET_ENV: FORKS.ensure(),
                            "RPRP_FORKSERVER_PYTHON": sys.executable}
            else:
                self.command = ENGINE_COMMAND
        super().prepare_for_flow_run(*args, **kwargs)
        deployment = kwargs.get("deployment", args[1] if len(args) > 1 else None)
        direct = direct_entrypoint(deployment)
        if direct is not None and self.working_dir is None and ENTRYPOINT_ENV not in self.env:
            self.working_dir, self.env[ENTRYPOINT_ENV] = direct


class RprpProcessWorker(ProcessWorker):
    job_configuration = RprpJobConfiguration

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set when a poll is wanted now rather than at the interval (poll_when_scheduled).
        self.poll_wanted = asyncio.Event()
        # Runs left by a poll because their last process still held its slot.
        self._left_for_their_slot: set[uuid.UUID] = set()

    async def _submit_scheduled_flow_runs(self, flow_run_response: list[Any]) -> list[Any]:
        if self._limiter is not None:
            held = set(self._limiter.statistics().borrowers)
            self._left_for_their_slot |= {r.flow_run.id for r in flow_run_response
                                          if r.flow_run.id in held}
            flow_run_response = [r for r in flow_run_response if r.flow_run.id not in held]
        return await super()._submit_scheduled_flow_runs(flow_run_response)

    def _release_limit_slot(self, flow_run_id: uuid.UUID) -> None:
        """A run left for its slot is polled for the moment the slot is free: answered within
        a second of pausing, it would otherwise wait for the interval poll (10 s by default)."""
        super()._release_limit_slot(flow_run_id)
        if flow_run_id in self._left_for_their_slot:
            self._left_for_their_slot.discard(flow_run_id)
            self.poll_wanted.set()


SCHEDULED_EVENTS = ["prefect.flow-run.Scheduled", "prefect.flow-run.Resuming"]
log = logging.getLogger("rprp.worker")


async def poll_when_scheduled(worker: RprpProcessWorker, retry_seconds: float = 5.0) -> None:
    """Poll as soon as the server says a flow run was scheduled, or the worker has freed the
    slot a scheduled run was left for. A burst of events gives one poll at a time (the next one
    covers everything scheduled meanwhile); a lost stream is opened again, and until then the
    interval poll goes on as before."""
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventFilter, EventNameFilter

    wanted = worker.poll_wanted

    async def submit() -> None:
        while True:
            await wanted.wait()
            wanted.clear()
            try:
                await worker.get_and_submit_flow_runs()
            except Exception as exc:  # noqa: BLE001  (the interval poll will try again)
                log.debug("an event-driven poll failed: %s", exc)

    submitter = asyncio.create_task(submit())
    try:
        while True:
            try:
                async with get_events_subscriber(
                        filter=EventFilter(event=EventNameFilter(name=SCHEDULED_EVENTS)),
                        reconnection_attempts=2) as events:
                    async for _ in events:
                        wanted.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (no stream: the interval poll still runs)
                log.debug("the event stream closed (%s); opening it again", exc)
            await asyncio.sleep(retry_seconds)
    finally:
        submitter.cancel()


async def serve(pool: str, limit: int | None, name: str | None, fork: bool = True) -> None:
    global FORKS
    if fork:
        FORKS = ForkServer()
        FORKS.ensure()
    worker = RprpProcessWorker(work_pool_name=pool, limit=limit, name=name)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    listener = asyncio.create_task(poll_when_scheduled(worker))
    try:
        await worker.start()
    except asyncio.CancelledError:
        pass
    finally:
        listener.cancel()
        if FORKS is not None:
            FORKS.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rprp.worker", description=__doc__)
    parser.add_argument("--pool", default="rprp-pool")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--name", default=None)
    parser.add_argument("--no-fork", action="store_true",
                        help="start each flow run as a fresh `python -m prefect.engine`")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.pool, args.limit, args.name, fork=_forking() and not args.no_fork))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
