"""One poller for many flow runs: a single `read_flow_runs` per interval, however many cases are
in flight, so watching costs the server the same for the case flows and the bare ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun

CHUNK = 200  # the server's page limit


@dataclass(frozen=True)
class Seen:
    state_type: str
    state_name: str
    pause_key: str | None
    final: bool
    paused: bool


def seen_of(run: FlowRun) -> Seen:
    state = run.state
    if state is None:
        return Seen("", "", None, False, False)
    return Seen(state.type.value, state.name or "", state.state_details.pause_key,
                state.is_final(), state.is_paused())


class RunWatcher:
    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.runs: dict[str, Seen] = {}
        self.watched: set[str] = set()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.polls = 0
        self.errors = 0

    async def __aenter__(self) -> RunWatcher:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    def watch(self, run_ids: Iterable[str]) -> None:
        self.watched.update(str(r) for r in run_ids)

    def forget(self, run_ids: Iterable[str]) -> None:
        for run_id in run_ids:
            self.watched.discard(str(run_id))

    async def _loop(self) -> None:
        async with get_client() as client:
            while True:
                ids = sorted(self.watched)
                try:
                    for start in range(0, len(ids), CHUNK):
                        chunk = [UUID(i) for i in ids[start:start + CHUNK]]
                        runs = await client.read_flow_runs(
                            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
                            limit=CHUNK)
                        for run in runs:
                            self.runs[str(run.id)] = seen_of(run)
                    self.polls += 1
                except Exception:  # noqa: BLE001 - a busy server: try again next interval
                    self.errors += 1
                async with self._changed:
                    self._changed.notify_all()
                await asyncio.sleep(self.interval)

    async def wait(self, run_id: str, check: Callable[[Seen], bool], timeout: float,
                   what: str) -> Seen:
        run_id = str(run_id)
        self.watched.add(run_id)
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                seen = self.runs.get(run_id)
                if seen is not None and check(seen):
                    return seen
                if seen is not None and seen.final and not check(seen):
                    raise RuntimeError(f"flow run {run_id} ended {seen.state_name} while "
                                       f"waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} "
                                       f"(last seen: {seen})")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass

    async def next_pause(self, run_id: str, after_key: str | None, timeout: float,
                         what: str = "") -> str:
        """Wait until the run is paused on a key other than `after_key`; returns the key."""
        seen = await self.wait(run_id, lambda s: s.paused and s.pause_key != after_key, timeout,
                               what or f"run {run_id} to pause after {after_key}")
        return str(seen.pause_key)

    async def final(self, run_id: str, timeout: float, what: str = "") -> str:
        seen = await self.wait(run_id, lambda s: s.final, timeout, what or f"run {run_id} to end")
        return seen.state_name
