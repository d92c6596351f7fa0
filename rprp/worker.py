"""`python -m rprp.worker`: Prefect's process worker, with one fix for fast resumes and one
for the cost of each step.

Prefect 3.8's worker crashes ("this borrower is already holding one of this CapacityLimiter's
tokens") when a suspended run is resumed before the worker has released the slot of the process
that just suspended it. With `--limit` (needed on a SQLite Prefect database) that happens as soon
as a person answers within a second or two. This worker simply leaves such a run for its next
poll, when the slot is free.

Prefect 3.8's worker also starts every flow run through a "workspace supervisor": a Python
process that imports Prefect (3-4 s on a small machine) only to exec a second one, the engine,
which imports it again. A case resumes about eight times in its life, so this worker starts the
engine directly (`<this python> -m prefect.engine`, Prefect's own path when a pool or deployment
sets `command`); the engine still runs the deployment's pull steps. A `command` set on the pool
or a deployment still wins.
"""

from __future__ import annotations

import os

# Prefect's SDK telemetry waits on a network this deployment may not have: each flow process
# would spend seconds at import. Flow processes inherit this from the worker.
os.environ.setdefault("DO_NOT_TRACK", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

from prefect.workers.process import ProcessJobConfiguration, ProcessWorker  # noqa: E402

# Same pool type as Prefect's process worker, on purpose: it replaces it in this process only.
warnings.filterwarnings("ignore", message="Type 'RprpProcessWorker'")


ENGINE_COMMAND = shlex.join([sys.executable, "-m", "prefect.engine"])


class RprpJobConfiguration(ProcessJobConfiguration):
    def prepare_for_flow_run(self, *args: Any, **kwargs: Any) -> None:
        if self.command is None:
            self.command = ENGINE_COMMAND
        super().prepare_for_flow_run(*args, **kwargs)


class RprpProcessWorker(ProcessWorker):
    job_configuration = RprpJobConfiguration

    async def _submit_scheduled_flow_runs(self, flow_run_response: list[Any]) -> list[Any]:
        if self._limiter is not None:
            held = set(self._limiter.statistics().borrowers)
            flow_run_response = [r for r in flow_run_response if r.flow_run.id not in held]
        return await super()._submit_scheduled_flow_runs(flow_run_response)


async def serve(pool: str, limit: int | None, name: str | None) -> None:
    worker = RprpProcessWorker(work_pool_name=pool, limit=limit, name=name)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
    try:
        await worker.start()
    except asyncio.CancelledError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rprp.worker", description=__doc__)
    parser.add_argument("--pool", default="rprp-pool")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.pool, args.limit, args.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
