"""A run's process killed the moment Prefect pauses it still leaves a form a person can answer.

Prefect's own `suspend_flow_run(wait_for_input=...)` pauses the run, then stores the form: a
process SIGKILLed in between left a Suspended run whose Resume Prefect refuses, which nothing
rescheduled (the 200-case chaos run lost a case so). `flows.asking.ask` stores the form first.
The flow runs as a worker would run it (`python -m prefect.engine` for a flow run of a
deployment), in a pool no worker serves, and dies by `os._exit` once Prefect accepts the pause.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.deployments.runner import RunnerDeployment

from tasks import orchestration
from tests.support.stack import ROOT, worker_env


@pytest.fixture
async def deployment(prefect_api: str) -> AsyncIterator[uuid.UUID]:
    pool = f"asking-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    deployment_id = await RunnerDeployment.from_entrypoint(
        str(ROOT / "tests/support/asking_flow.py") + ":asks", name=pool,
        work_pool_name=pool).apply()
    yield deployment_id
    async with get_client() as client:
        await client.delete_deployment(deployment_id)
        await client.delete_work_pool(pool)


def run_process(prefect_api: str, run_id: uuid.UUID, **flags: str) -> int:
    """Run the flow run's process as a worker starts it; its exit code."""
    return run_logged(prefect_api, run_id, **flags)[0]


def run_logged(prefect_api: str, run_id: uuid.UUID, **flags: str) -> tuple[int, str]:
    """Run the flow run's process as a worker starts it; its exit code and what it logged."""
    env = dict(worker_env(prefect_api), PREFECT__FLOW_RUN_ID=str(run_id),
               PREFECT_LOGGING_LEVEL="INFO", **flags)
    done = subprocess.run([sys.executable, "-m", "prefect.engine"], cwd=ROOT, env=env,
                          timeout=120, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


async def killed_at_the_pause(prefect_api: str, deployment: uuid.UUID,
                              **flags: str) -> uuid.UUID:
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment)
    code = run_process(prefect_api, run.id, RPRP_TEST_DIE_AFTER_PAUSE="1", **flags)
    assert code == 9, "the process did not die at the pause"
    async with get_client() as client:
        paused = await client.read_flow_run(run.id)
    assert paused.state is not None and paused.state.is_paused()
    return run.id


async def test_a_run_killed_as_it_pauses_can_be_answered_and_finishes(
        prefect_api: str, deployment: uuid.UUID) -> None:
    run_id = await killed_at_the_pause(prefect_api, deployment)
    waiting = await orchestration.suspension(str(run_id))
    assert waiting == orchestration.Suspension(form="Question", form_saved=True)
    async with get_client() as client:
        keyset = (await client.read_flow_run(run_id)).state.state_details.run_input_keyset  # type: ignore[union-attr]
        assert keyset is not None
        described = await client.read_flow_run_input(run_id, keyset["description"])
        assert "**question**" in described
        result = await client.resume_flow_run(run_id, run_input={"choice": "Yes, go on"})
        assert result.status is SetStateStatus.ACCEPT
    assert run_process(prefect_api, run_id) == 0
    async with get_client() as client:
        assert (await client.read_flow_run(run_id)).state_type is StateType.COMPLETED


async def test_prefects_own_order_leaves_such_a_run_unanswerable(
        prefect_api: str, deployment: uuid.UUID) -> None:
    """The control: without `ask`, the same death leaves no form, and Resume is refused."""
    run_id = await killed_at_the_pause(prefect_api, deployment, RPRP_TEST_PREFECT_ORDER="1")
    assert await orchestration.suspension(str(run_id)) == orchestration.Suspension(
        form="", form_saved=False)
    async with get_client() as client:
        result = await client.resume_flow_run(run_id, run_input={"choice": "Yes, go on"})
    assert result.status is not SetStateStatus.ACCEPT


async def test_a_replayed_question_already_answered_returns_its_answer(
        prefect_api: str, deployment: uuid.UUID) -> None:
    """Asked again on replay, the answer given is returned, from the run's own record: neither
    the form nor a pause goes to Prefect again."""
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment)
    assert run_process(prefect_api, run.id) == 0  # suspends, and its process exits
    async with get_client() as client:
        assert (await client.read_flow_run(run.id)).state_type is StateType.PAUSED
        result = await client.resume_flow_run(run.id, run_input={"choice": "No, stop here"})
        assert result.status is SetStateStatus.ACCEPT
    assert run_process(prefect_api, run.id, RPRP_TEST_EXPECT="NO",
                       RPRP_TEST_NO_CALLS_FOR_ANSWERED="1") == 0
    async with get_client() as client:
        done = await client.read_flow_run(run.id)
    assert done.state_type is StateType.COMPLETED, done.state


async def test_a_pause_answered_before_its_reply_ends_the_process_and_the_next_takes_the_answer(
        prefect_api: str, deployment: uuid.UUID) -> None:
    """The pause is accepted, answered at once, and the run learns of it only from a retried
    proposal that Prefect refuses with the run Scheduled again: the process ends with nothing
    changed, and the run's next process gets the answer."""
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment)
    code, logged = run_logged(prefect_api, run.id, RPRP_TEST_ANSWER_BEFORE_REPLY="1")
    assert code == 0 and "Answered before this process heard of its pause" in logged, logged
    assert "ERROR" not in logged and "Traceback" not in logged, logged
    async with get_client() as client:
        assert (await client.read_flow_run(run.id)).state_type is StateType.SCHEDULED
    assert run_process(prefect_api, run.id, RPRP_TEST_EXPECT="YES") == 0
    async with get_client() as client:
        done = await client.read_flow_run(run.id)
    assert done.state_type is StateType.COMPLETED, done.state


async def test_without_that_exit_the_process_ends_in_an_error(prefect_api: str,
                                                             deployment: uuid.UUID) -> None:
    """The control: as Prefect's suspend does, the refusal is raised ('unexpected state') and
    the flow fails with a traceback; the run goes on only because Prefect refuses the Failed
    state it then proposes."""
    async with get_client() as client:
        run = await client.create_flow_run_from_deployment(deployment)
    _, logged = run_logged(prefect_api, run.id, RPRP_TEST_ANSWER_BEFORE_REPLY="1",
                           RPRP_TEST_WITHOUT_THE_EXIT="1")
    assert "Received unexpected state from API" in logged, logged
    async with get_client() as client:
        assert (await client.read_flow_run(run.id)).state_type is StateType.SCHEDULED
