"""What a public complaint's people are told over the case's whole life, by moving the sweep's
`as_of` (the style of test_case_clock.py): the officer declines and the case moves on at once,
the decision emails say how to decide, the complainant's outcome letter carries the words
written for them, the ending letter arrives, and a year on the line manager is reminded of the
PDR discussion, once, after the case has closed. Every email goes through the real SMTP server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from infra.db import session_scope
from infra.mailsink import read_messages
from models import ActionReview, Report
from models.enums import CaseState
from tasks.action_reviews import record_review, review_wait
from tasks.calendar import england_and_wales
from tasks.casework import advance, decline_account
from tasks.deadline_sweep import reminder_day, sweep
from tasks.intake import create_case
from tasks.notify import deliver_pending
from tasks.report import record_pdr_discussion
from tests.integration.test_case_clock import answer, at_seven, pool_paused  # noqa: F401
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
COMPLAINANT = "jo.public@example.org"
WORDS = "Stops will now be explained at the start, and supervisors are checking this."


def delivered(mail_sink, case_id: int, kind: str) -> list:  # type: ignore[no-untyped-def]
    keys = {row.key: row for row in outbox(case_id) if row.kind == kind}
    return [m for m in read_messages(mail_sink.directory)
            if m.headers.get("X-RPRP-Outbox-Key") in keys]


async def test_a_public_complaint_tells_everyone_what_they_are_owed(
        pool_paused: None, mail_sink) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    served = datetime.now(UTC)
    referral = sample_referral(origin="public_complaint", complainant={
        "name": "Jo Public", "email": COMPLAINANT, "review_body": "iopc"})
    with session_scope() as session:
        case, _ = create_case(session, referral, actor=PSD)
        case_id = case.id
    assert case_id is not None
    assert advance(case_id, served)[0] is S.AWAITING_ACCOUNT

    # The officer declines: the case moves on now, not after the deadline; PSD and the
    # reviewer are told; the sweep after the deadline has nothing to do.
    assert decline_account(case_id, 1, served)
    assert advance(case_id, served)[0] is S.FACT_FINDING_DECISION
    await sweep(served + timedelta(days=14))
    assert [r for r in outbox(case_id) if r.kind == "missed_account_deadline"] == []
    await deliver_pending()
    assert sorted(r for m in delivered(mail_sink, case_id, "account_declined")
                  for r in m.recipients) == sorted([PSD, REVIEWER])
    [decision] = delivered(mail_sink, case_id, "decision_needed")
    for step in ("Open the case page", "Press Resume", "Fill in the form", "Press Submit"):
        assert step in decision.text
    assert "declined to give an account" in decision.text
    notice = delivered(mail_sink, case_id, "officer_notice")[0]
    assert "contact Professional Standards at psd@force.example" in notice.text

    now = served + timedelta(days=15)
    assert answer(case_id, now,
                  choice="No fact-finding needed: go to the discussion") is S.DISCUSSION_SCHEDULING
    assert answer(case_id, now,
                  choice="Discussion held and the officer engaged",
                  held_on=now.date()) is S.DISCUSSION_HELD
    report = report_answer(agreed_on=now.date().isoformat(), complainant_summary=WORDS,
                           force_lessons="Night-shift supervision gaps in the response team.")
    report["actions"][0]["due_on"] = (now.date() + timedelta(days=30)).isoformat()
    assert answer(case_id, now, **report) is S.REPORT_SUBMITTED
    assert advance(case_id, now)[0] is S.ACTIONS_MONITORING

    # The action-plan review twelve weeks on closes the case.
    with session_scope() as session:
        review = session.exec(select(ActionReview).where(ActionReview.case_id == case_id)).one()
    await sweep(at_seven(review.due_on))
    with session_scope() as session:
        run_id = session.get(ActionReview, review.id).flow_run_id  # type: ignore[union-attr]
    assert run_id
    async with get_client() as client:
        try:
            step = review_wait(case_id, 1, run_id)
            assert step is not None
            wait, action_ids = step
            closing = {f"action_{a}_note": "Module completed." for a in action_ids}
            closing |= {f"action_{a}_outcome": "Completed: close this action" for a in action_ids}
            assert record_review(case_id, 1, wait.key, through_gateway(
                case_id, wait, closing, action_ids=action_ids))
        finally:
            await client.delete_flow_run(UUID(run_id))
    assert advance(case_id)[0] is S.CLOSED_COMPLETE
    await deliver_pending()

    # The complainant: the outcome letter with the words written for them and the IOPC as the
    # review body, then the ending letter; each once. Sweeps after closure send no more.
    [outcome] = delivered(mail_sink, case_id, "complainant_outcome")
    assert outcome.recipients == [COMPLAINANT]
    assert WORDS in outcome.text and "Night-shift" not in outcome.text + outcome.html
    assert "Independent Office for Police Conduct" in outcome.text
    [ending] = delivered(mail_sink, case_id, "complainant_ending")
    assert ending.recipients == [COMPLAINANT] and "has ended" in ending.subject
    assert "review of it" in ending.text  # points back to the outcome letter's review rights
    progress_before = len([r for r in outbox(case_id) if r.kind == "complainant_progress"])
    await sweep(at_seven(review.due_on + timedelta(days=60)))
    assert len([r for r in outbox(case_id) if r.kind == "complainant_progress"]) == (
        progress_before)
    assert "Press Resume" in delivered(mail_sink, case_id, "action_review_due")[0].text

    # A year on: the PDR deadline outlived the case; the reviewer is reminded once, before it.
    with session_scope() as session:
        pdr_due = session.exec(select(Report).where(Report.case_id == case_id)).one().pdr_due_on
    remind_on = reminder_day(england_and_wales(), pdr_due, 20)
    await sweep(at_seven(remind_on - timedelta(days=1)))
    assert [r for r in outbox(case_id) if r.kind == "pdr_reminder"] == []
    await sweep(at_seven(remind_on))
    await sweep(at_seven(remind_on))
    await deliver_pending()
    [reminder] = delivered(mail_sink, case_id, "pdr_reminder")
    assert reminder.recipients == [REVIEWER] and "70(6)" in reminder.text
    record_pdr_discussion(case_id, remind_on, actor=REVIEWER, now=at_seven(remind_on))
    await sweep(at_seven(pdr_due))
    assert len([r for r in outbox(case_id) if r.kind == "pdr_reminder"]) == 1
    assert case_row(case_id).state is S.CLOSED_COMPLETE

    # Every email of the case reached the SMTP server exactly once.
    await deliver_pending()
    keys = [m.headers.get("X-RPRP-Outbox-Key") for m in read_messages(mail_sink.directory)]
    mine = [row.key for row in outbox(case_id)]
    assert all(row.status == "sent" for row in outbox(case_id))
    assert sorted(k for k in keys if k in mine) == sorted(mine)
