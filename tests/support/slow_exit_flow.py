"""A flow that waits to be woken and whose process takes seconds to exit, for the worker's
test of a run resumed while its last process still holds the worker's slot
(tests/integration/test_worker_pickup.py)."""

from __future__ import annotations

import atexit
import time

from prefect import flow
from prefect.flow_runs import asuspend_flow_run

EXIT_SECONDS = 5.0


@flow(name="rprp-test-slow-exit", persist_result=False)
async def waits_then_exits_slowly() -> str:
    atexit.register(time.sleep, EXIT_SECONDS)  # the exit hooks run in a forked child too
    await asuspend_flow_run(key="woken")  # replayed once resumed: already fired, so it returns
    return "woken"
