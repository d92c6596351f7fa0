"""`rprp.worker` picks up a run as soon as it is scheduled, not at its next poll.

Its own work pool and a flow with nothing in it, so that the session's worker takes none of
these runs; its interval poll is set to ten minutes, so a run that finishes within the ceiling
was found through the event stream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.deployments.runner import RunnerDeployment

from tests.support.stack import ROOT, Worker, eventually, worker_env

CEILING = 120.0  # far below the ten-minute interval poll


@pytest.fixture
async def pool_and_worker(deployments: str, session_dir: Path) -> AsyncIterator[tuple[str, str]]:
    pool = f"pickup-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment = RunnerDeployment.from_entrypoint(
        str(ROOT / "tests/support/tiny_flow.py") + ":tiny", name=pool, work_pool_name=pool,
        job_variables={"working_dir": str(ROOT)})
    deployment_id = await deployment.apply()
    env = dict(worker_env(deployments), PREFECT_WORKER_QUERY_SECONDS="600")
    worker = Worker(env=env, log_path=session_dir / f"{pool}.log", pool=pool)
    worker.start()
    yield pool, str(deployment_id)
    worker.stop()
    async with get_client() as client:
        await client.delete_deployment(deployment_id)
        await client.delete_work_pool(pool)


async def _finished(run_id: uuid.UUID) -> bool:
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    return bool(run.state and run.state.is_completed())


async def test_a_run_scheduled_between_polls_starts_at_once(pool_and_worker) -> None:  # type: ignore[no-untyped-def]
    _, deployment_id = pool_and_worker
    for attempt in ("first", "second"):  # the second is scheduled well after the first poll
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(uuid.UUID(deployment_id))
        await eventually(lambda run_id=run.id: _finished(run_id), timeout=CEILING,
                         what=f"the {attempt} run to be picked up and finish")
