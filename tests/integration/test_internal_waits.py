"""Waits nobody answers in a form (the officer's account, an action-plan review run): a real
flow run suspends with no input schema, is woken without input, survives a Resume pressed for
nothing, and its suspensions are logged at INFO, not as errors."""

from __future__ import annotations

import logging
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.flow_runs import aresume_flow_run

from infra.db import session_scope
from models import Case
from models.enums import CaseState
from tasks.orchestration import wake_case
from tests.support.cases import case_row, give_account, open_case, paused_in
from tests.support.stack import eventually

S = CaseState
pytestmark = [pytest.mark.integration]


async def _paused_state(flow_run_id: str):  # type: ignore[no-untyped-def]
    async with get_client() as client:
        run = await client.read_flow_run(UUID(flow_run_id))
    assert run.state is not None and run.state.is_paused()
    return run.state


async def _inputs(flow_run_id: str) -> list[str]:
    async with get_client() as client:
        found = await client.filter_flow_run_input(UUID(flow_run_id), key_prefix="suspended",
                                                   limit=100, exclude_keys=set())
    return [i.key for i in found]


async def test_the_account_wait_offers_no_form_and_is_woken_without_input(stack) -> None:
    case_id = await open_case()
    case = await paused_in(case_id, S.AWAITING_ACCOUNT)
    run_id = case.flow_run_id or ""
    state = await _paused_state(run_id)
    assert state.state_details.run_input_keyset is None, "no Resume form for an internal wait"
    assert await _inputs(run_id) == [], "no input schema or description stored in Prefect"
    first_key = state.state_details.pause_key

    # Resume pressed in the UI for nothing: the run replays, finds the case unchanged and waits
    # again under a fresh key, with still no form.
    await aresume_flow_run(UUID(run_id))

    async def waiting_again() -> object:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(run_id))
        ok = (run.state and run.state.is_paused()
              and run.state.state_details.pause_key != first_key)
        return run.state if ok else None

    again = await eventually(waiting_again, 90, "the run suspended again")
    assert again.state_details.run_input_keyset is None  # type: ignore[attr-defined]
    assert case_row(case_id).state is S.AWAITING_ACCOUNT

    # The account arrives: the portal's wake resumes it without input and the case moves on.
    await give_account(case_id, "My account of what happened at the stop.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    assert case_row(case_id).wake_requested is False


async def test_a_flag_left_for_a_run_that_waits_for_a_person_is_cleared(stack) -> None:
    """A sweep's wake and the portal's can race for one account: the loser finds the run on to
    the fact-finding form. It must not be woken, nor stay flagged for every later sweep."""
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        case.wake_requested = True  # as the losing wake, and the account's transaction, left it
        session.add(case)
    assert await wake_case(case_id, attempts=1) is False
    assert case_row(case_id).wake_requested is False
    assert case_row(case_id).state is S.FACT_FINDING_DECISION


async def test_a_suspension_is_logged_as_info_not_as_an_error(stack) -> None:
    case_id = await open_case()
    case = await paused_in(case_id, S.AWAITING_ACCOUNT)
    run_id = UUID(case.flow_run_id or "")

    async def finished_logs() -> list[object] | None:
        async with get_client() as client:
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        found = [log for log in logs if log.message.startswith("Finished in state Suspended")]
        return found or None

    found = await eventually(finished_logs, 60, "the engine's 'Finished in state' log")
    assert all(log.level == logging.INFO for log in found), [  # type: ignore[attr-defined]
        (log.level, log.message) for log in found]  # type: ignore[attr-defined]
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    assert [log.message for log in logs if log.level >= logging.ERROR] == []
