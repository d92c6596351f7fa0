"""Starting a referral's flow run after its response has gone (`Prefer: respond-async`).

Storing the case is what intake must not lose, and it takes milliseconds; creating the flow run
is a few Prefect API calls that take longer, and longer still when Prefect is busy or down. So
an asynchronous referral is answered once the case is stored, and its run is started here, in
the portal's event loop, tried again (0.5 s, doubling, at most a minute apart) until Prefect
answers. Starting is idempotent (one run per case, by its idempotency key), so a second start,
from a repeated request, the case page's Start or another portal, finds the first run.

If the portal stops before the run has started, nothing is lost: the case is stored without a
run, and the next `GET /api/referrals/{id}` (how the client sees the run id appear), a repeated
POST with the same key, or Start on the case page starts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_RETRY = 0.5
MAX_RETRY = 60.0
STARTS_AT_ONCE = 2


class RunStarter:
    """One background start per case at a time, retried until the case has its run."""

    def __init__(self, start: Callable[[int], Awaitable[str | None]],
                 first_retry: float = FIRST_RETRY, max_retry: float = MAX_RETRY) -> None:
        self._start = start
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._tasks: dict[int, asyncio.Task[str | None]] = {}
        # Two starts at a time: a burst of referrals is answered first, its runs follow.
        self._gate = asyncio.Semaphore(STARTS_AT_ONCE)

    def soon(self, case_id: int) -> None:
        """Start the case's run in the background, unless a start is already under way."""
        if case_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._until_started(case_id))
        self._tasks[case_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(case_id, None))

    @property
    def starting(self) -> set[int]:
        return set(self._tasks)

    async def _until_started(self, case_id: int) -> str | None:
        delay = self._first_retry
        while True:
            try:
                async with self._gate:
                    run_id = await self._start(case_id)
            except Exception as exc:  # noqa: BLE001 - whatever went wrong, try again later
                log.warning("flow run for case %s not started: %s", case_id,
                            type(exc).__name__)
                run_id = None
            if run_id:
                return run_id
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
