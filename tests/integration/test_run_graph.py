"""The run graph a manager reads in the Prefect UI: a finished case's task runs, read from the
Prefect API, are the process's steps in order, named with the case reference and round, and the
action-plan reviews are among them (asked in the case's own run, not in runs of their own).
A real Prefect server and process worker; time moves through the sweep's `as_of`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.client.schemas.sorting import TaskRunSort
from sqlmodel import select

from flows.sweep import rprp_sweep
from infra.db import session_scope
from models import Action, ActionReview
from models.enums import CaseState
from tests.support.cases import (
    case_row,
    decide,
    finished,
    give_account,
    open_case,
    paused_in,
    report_answer,
)
from tests.support.stack import eventually

S = CaseState
pytestmark = [pytest.mark.integration]


async def review_asked(case_id: int, number: int) -> None:
    """The case's own run is paused on review `number`'s form (the sweep opened it there)."""
    async def check() -> bool:
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id, ActionReview.number == number)).first()
        case = case_row(case_id)
        if review is None or review.flow_run_id != case.flow_run_id:
            return False
        async with get_client() as client:
            run = await client.read_flow_run(UUID(case.flow_run_id or ""))
        return bool(run.state and run.state.is_paused()
                    and run.state.state_details.pause_key == f"action-review-{number}-0")

    await eventually(check, 90, f"case {case_id} asking review {number}")


def the_action(case_id: int) -> int:
    with session_scope() as session:
        action = session.exec(select(Action).where(Action.case_id == case_id)).one()
        assert action.id is not None
        return action.id


async def test_a_finished_case_shows_its_steps_in_order_with_its_reviews(stack) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "I accept I was abrupt; I was rushing to another call.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.ACTIONS_MONITORING)
    action = the_action(case_id)

    # The first review, 12 weeks on, keeps the action open; the second, 12 weeks later, closes it.
    # Other tests' cases share the session's DB and may have reviews due too: this one's is
    # among those started, and review_asked proves it is asked in this case's own run.
    summary = await rprp_sweep(as_of=datetime.now(UTC) + timedelta(days=92))
    assert summary["reviews_started"] >= 1
    await review_asked(case_id, 1)
    await decide(case_id, **{f"action_{action}_note": "Half the module done.",
                             f"action_{action}_outcome": "Not yet complete: keep open"})
    await eventually(lambda: _review_done(case_id, 1), 90, "review 1 recorded")
    await paused_in(case_id, S.ACTIONS_MONITORING)
    summary = await rprp_sweep(as_of=datetime.now(UTC) + timedelta(days=92 + 90))
    assert summary["reviews_started"] >= 1
    await review_asked(case_id, 2)
    await decide(case_id, **{f"action_{action}_note": "Module completed.",
                             f"action_{action}_outcome": "Completed: close this action"})
    assert await finished(case_id) == "Completed"

    case = case_row(case_id)
    ref = case.reference
    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(case.flow_run_id or "")])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC)
        separate = await client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(case.flow_run_id or "")])))
    names = [r.name for r in sorted(runs, key=lambda r: r.start_time or r.expected_start_time)]
    steps = [n for n in names if not n.startswith("send-mail")]
    assert steps == [
        f"serve-notice {ref} r1",
        f"await-account {ref} r1",
        f"fact-finding-decision {ref} r1",
        f"discussion-outcome {ref} r1",
        f"file-report {ref} r1",
        f"schedule-action-review {ref} r1",
        f"action-review {ref} r1",
        f"action-review {ref} r2",
        f"close-case {ref} r1",
    ]
    assert f"send-mail {ref}" in names  # the letters go as the case waits, not retried by Prefect
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    assert separate == []  # the reviews were steps of the case's run, not runs of their own
    with session_scope() as session:
        reviews = session.exec(select(ActionReview).where(ActionReview.case_id == case_id)).all()
    assert {r.flow_run_id for r in reviews if r.completed_at} == {case.flow_run_id}
    # Nothing but the reference and the round names a step: never the officer or the reviewer.
    assert not any("Officer" in n or "Reviewer" in n for n in names)


def _review_done(case_id: int, number: int) -> bool:
    with session_scope() as session:
        review = session.exec(select(ActionReview).where(
            ActionReview.case_id == case_id, ActionReview.number == number)).one()
        return review.completed_at is not None
