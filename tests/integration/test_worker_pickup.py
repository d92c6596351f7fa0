"""`rprp.worker` picks up a run as soon as it is scheduled, not at its next poll.

Its own work pool and small flows of its own, so that the session's worker takes none of these
runs; its interval poll is set to ten minutes, so a run that finishes within the ceiling was
found through the event stream, or when the worker freed the slot the run was waiting for.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.flow_runs import aresume_flow_run

from tests.support.stack import ROOT, Worker, eventually, worker_env

CEILING = 120.0  # far below the ten-minute interval poll


FLOWS = {"tiny": "tests/support/tiny_flow.py:tiny",
         "slow-exit": "tests/support/slow_exit_flow.py:waits_then_exits_slowly"}


@pytest.fixture(scope="module")
async def pool_and_worker(deployments: str, session_dir: Path) -> AsyncIterator[dict[str, str]]:
    """A pool of its own, a deployment in it for each of FLOWS, and its worker, started once
    for the module (each test's runs are its own)."""
    pool = f"pickup-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployed: dict[str, str] = {}
    for name, entrypoint in FLOWS.items():
        deployment = RunnerDeployment.from_entrypoint(
            str(ROOT / entrypoint), name=f"{pool}-{name}", work_pool_name=pool,
            job_variables={"working_dir": str(ROOT)})
        deployed[name] = str(await deployment.apply())
    env = dict(worker_env(deployments), PREFECT_WORKER_QUERY_SECONDS="600")
    worker = Worker(env=env, log_path=session_dir / f"{pool}.log", pool=pool)
    worker.start()
    yield deployed
    worker.stop()
    async with get_client() as client:
        for deployment_id in deployed.values():
            await client.delete_deployment(uuid.UUID(deployment_id))
        await client.delete_work_pool(pool)


async def _state(run_id: uuid.UUID) -> StateType | None:
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state_type


async def _finished(run_id: uuid.UUID) -> bool:
    return await _state(run_id) is StateType.COMPLETED


async def _paused(run_id: uuid.UUID) -> bool:
    return await _state(run_id) is StateType.PAUSED


async def test_a_run_scheduled_between_polls_starts_at_once(pool_and_worker) -> None:  # type: ignore[no-untyped-def]
    for attempt in ("first", "second"):  # the second is scheduled well after the first poll
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(
                uuid.UUID(pool_and_worker["tiny"]))
        await eventually(lambda run_id=run.id: _finished(run_id), timeout=CEILING,
                         what=f"the {attempt} run to be picked up and finish")


async def test_a_run_resumed_while_its_process_exits_starts_when_that_process_ends(
        pool_and_worker) -> None:  # type: ignore[no-untyped-def]
    """Resumed the moment it pauses, the run is Scheduled while its last process (exiting for
    five seconds) still holds the worker's slot, so the poll that the Scheduled event brings
    leaves it; the worker polls again when that process ends, not ten minutes later."""
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(
            uuid.UUID(pool_and_worker["slow-exit"]))
    await eventually(lambda: _paused(run.id), timeout=CEILING, what="the run to pause",
                     interval=0.05)
    await aresume_flow_run(run.id)
    await eventually(lambda: _finished(run.id), timeout=CEILING,
                     what="the resumed run to be picked up once its process ended and finish")

