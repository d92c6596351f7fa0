"""A case's whole life on the clock, in seconds: the 5-working-day account window with its
reminders, the missed deadline, the decisions, the report, and the action-plan review three
months later, with time moved only by the sweep's `as_of`.

The case is driven through the same steps its flow runs call (`advance`, `apply_answer`,
`review_wait`, `record_review`), so no flow process starts; the sweep is the real one, against
the real Prefect server (it starts the review's flow run there) and the real SMTP server.
test_case_lifecycle.py runs the same life through the flow runs themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from sqlmodel import select

from infra.db import session_scope
from infra.mailsink import read_messages
from models import ActionReview, Deadline
from models.enums import CaseState, DeadlineKind
from tasks.action_reviews import record_review, review_wait
from tasks.calendar import LONDON, england_and_wales
from tasks.casework import advance, apply_answer
from tasks.deadline_sweep import reminder_day, sweep
from tasks.intake import create_case
from tasks.notify import deliver_pending
from tests.support.cases import (
    PSD,
    REVIEWER,
    case_row,
    outbox,
    report_answer,
    sample_referral,
    through_gateway,
)

S = CaseState
pytestmark = [pytest.mark.integration]
POOL = "rprp-pool"


@pytest.fixture
async def pool_paused(deployments: str) -> AsyncIterator[None]:
    """No worker may run the review's flow run while this test plays its part."""
    async with get_client() as client:
        await client.update_work_pool(POOL, WorkPoolUpdate(is_paused=True))
    yield
    async with get_client() as client:
        await client.update_work_pool(POOL, WorkPoolUpdate(is_paused=False))


def at_seven(day: object) -> datetime:
    """The sweep's scheduled time, 07:00 Europe/London, on `day`."""
    return datetime.combine(day, time(7), tzinfo=LONDON)  # type: ignore[arg-type]


def sent(case_id: int, kind: str) -> list[str]:
    return [row.recipient for row in outbox(case_id) if row.kind == kind]


def answer(case_id: int, now: datetime, **values: object) -> CaseState:
    """What a person's Resume form sends, through the gateway's checks and record, applied as
    the flow's record-decision task does."""
    wait = advance(case_id, now)[1]
    assert wait is not None
    return apply_answer(case_id, wait.key, through_gateway(case_id, wait, values, now=now), now)


async def test_a_case_lives_its_whole_life_in_seconds_by_moving_the_sweep(
        pool_paused: None, mail_sink) -> None:  # type: ignore[no-untyped-def]
    served = datetime.now(UTC)
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        case_id = case.id
    assert case_id is not None
    assert advance(case_id, served)[0] is S.AWAITING_ACCOUNT
    with session_scope() as session:
        due_at = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT)).one().due_at
    due_day = due_at.replace(tzinfo=UTC).astimezone(LONDON).date()
    calendar = england_and_wales()

    # The reminders: two working days before the deadline, and on its morning; once each.
    await sweep(at_seven(reminder_day(calendar, due_day, 2) - timedelta(days=1)))
    assert sent(case_id, "account_reminder") == []
    for day in (reminder_day(calendar, due_day, 2), due_day):
        await sweep(at_seven(day))
        await sweep(at_seven(day))
    officer_email = sent(case_id, "officer_notice")[0]
    assert sent(case_id, "account_reminder") == [officer_email, officer_email]

    # The deadline passes with no account: not non-engagement; the case moves on, PSD and the
    # reviewer are told.
    morning_after = at_seven(calendar.add_working_days(due_day, 1))
    await sweep(morning_after)
    assert case_row(case_id).state is S.NO_ACCOUNT and case_row(case_id).account_deadline_missed
    assert sorted(sent(case_id, "missed_account_deadline")) == sorted([PSD, REVIEWER])

    # The reviewer's decisions, as the Resume forms send them.
    assert answer(case_id, morning_after,
                  choice="No fact-finding needed: go to the discussion") is S.DISCUSSION_SCHEDULING
    assert answer(case_id, morning_after,
                  choice="Discussion held and the officer engaged",
                  held_on=morning_after.date()) is S.DISCUSSION_HELD
    report = report_answer(agreed_on=morning_after.date().isoformat(), review_period_weeks=12)
    report["actions"][0]["due_on"] = (morning_after.date() + timedelta(days=30)).isoformat()
    assert answer(case_id, morning_after, **report) is S.REPORT_SUBMITTED
    assert advance(case_id, morning_after)[0] is S.ACTIONS_MONITORING
    with session_scope() as session:
        review = session.exec(select(ActionReview).where(ActionReview.case_id == case_id)).one()
    assert review.due_on == morning_after.date() + timedelta(weeks=12)

    # Three months on: the sweep the day before starts nothing; on the day it starts the review
    # run, once, with nothing but ids for parameters.
    await sweep(at_seven(review.due_on - timedelta(days=1)))
    with session_scope() as session:
        assert session.get(ActionReview, review.id).flow_run_id is None  # type: ignore[union-attr]
    await sweep(at_seven(review.due_on))
    await sweep(at_seven(review.due_on))
    with session_scope() as session:
        run_id = session.get(ActionReview, review.id).flow_run_id  # type: ignore[union-attr]
    assert run_id
    async with get_client() as client:
        run = await client.read_flow_run(UUID(run_id))
        assert run.parameters == {"case_id": case_id, "review_number": 1}
        try:
            # The review: the reviewer is emailed the link, closes the action, the case closes.
            step = review_wait(case_id, 1, run_id)
            assert step is not None
            wait, action_ids = step
            closing = {f"action_{a}_note": "Module completed." for a in action_ids}
            closing |= {f"action_{a}_outcome": "Completed: close this action" for a in action_ids}
            assert record_review(case_id, 1, wait.key, through_gateway(
                case_id, wait, closing, action_ids=action_ids))
        finally:
            await client.delete_flow_run(UUID(run_id))
    assert sent(case_id, "action_review_due") == [REVIEWER]
    assert advance(case_id)[0] is S.CLOSED_COMPLETE

    # Every email reached the SMTP server exactly once.
    await deliver_pending()
    keys = [m.headers.get("X-RPRP-Outbox-Key") for m in read_messages(mail_sink.directory)]
    mine = [row.key for row in outbox(case_id)]
    assert all(row.status == "sent" for row in outbox(case_id))
    assert sorted(k for k in keys if k in mine) == sorted(mine)
