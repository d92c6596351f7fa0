"""The action-plan review step: ask the reviewer about each open action, record the notes.

A review is asked in the case's own run (flows/case_lifecycle.py, `action-review`) once the sweep
opens it; reviews opened before that run as their own flow (flows/action_review.py), and both
record through `record_review`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from infra.db import session_scope
from models import Case, as_utc
from models.enums import CaseState
from tasks import answers, letters, steps
from tasks.casework import Wait, action_review_wait, enter, record_rejection
from tasks.people import NotAllowedToDecide, check_entitled
from tasks.records import lock_case
from tasks.report import apply_action_review, open_actions, review_of


def review_wait(case_id: int, number: int, flow_run_id: str | None) -> tuple[Wait, list[int]] | None:
    """What review `number` asks, or None if it is done or the case is no longer monitored.

    Also queues the reviewer's email with the link to the Prefect run that asks it (once).
    """
    with session_scope() as session:
        case = lock_case(session, case_id)
        review = review_of(session, case_id, number)
        if case.state is not CaseState.ACTIONS_MONITORING or review is None or (
                review.completed_at is not None):
            return None
        if flow_run_id:
            letters.action_review_due(session, case, review, flow_run_id)
        action_ids = [a.id for a in open_actions(session, case_id) if a.id is not None]
        return review_step(case, number), action_ids


def review_step(case: Case, number: int) -> Wait:
    return action_review_wait(case, number)


def take_review(session: Session, case_id: int, number: int, wait_key: str, answer: Any,
                now: datetime) -> bool:
    """Apply the review if the gateway recorded it (the decider is taken from that record);
    True when the case closed because every action is closed."""
    case = lock_case(session, case_id)
    wait = review_step(case, number)
    if wait.key != wait_key:
        return case.state is CaseState.CLOSED_COMPLETE
    step = steps.ACTION_REVIEW
    actor = "unverified"
    try:
        submission = answers.verified_submission(session, case, wait_key, answer)
        actor = submission.decided_by
        decider = check_entitled(case, submission.decided_by, submission.decided_as,
                                 reviewer_may=step.reviewer_may, psd_may=step.psd_may)
    except (NotAllowedToDecide, answers.DecisionNotVerified) as exc:
        case.rejected_inputs += 1
        session.add(case)
        record_rejection(session, case, wait, actor, str(exc))
        return False
    all_closed = apply_action_review(session, case_id, number, answer, decider, now)
    if all_closed and case.state is CaseState.ACTIONS_MONITORING:
        enter(session, case, CaseState.CLOSED_COMPLETE, actor=decider,
              action="all_actions_closed", now=now)
    return case.state is CaseState.CLOSED_COMPLETE


def record_review(case_id: int, number: int, wait_key: str, answer: Any,
                  now: datetime | None = None) -> bool:
    """`take_review` in a session of its own."""
    with session_scope() as session:
        return take_review(session, case_id, number, wait_key, answer,
                           as_utc(now) if now else datetime.now(UTC))
