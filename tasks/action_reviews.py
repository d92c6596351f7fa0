"""The action-plan review step: ask the reviewer about each open action, record the notes."""

from __future__ import annotations

from typing import Any

from models import Case
from models.enums import CaseState
from rprp.db import session_scope
from tasks import decisions, letters
from tasks.casework import Wait, enter, record_rejection
from tasks.people import NotAllowedToDecide, check_entitled
from tasks.records import lock_case
from tasks.report import apply_action_review, open_actions, review_of


def review_wait(case_id: int, number: int, flow_run_id: str | None) -> tuple[Wait, list[int]] | None:
    """What review `number` asks, or None if it is done or the case is no longer monitored.

    Also queues the reviewer's email with the link to this review's Prefect run (once).
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
    return decisions.action_review_wait(case, number)


def record_review(case_id: int, number: int, wait_key: str, answer: Any) -> bool:
    """Apply the review if the gateway recorded it (the decider is taken from that record);
    True when the case closed because every action is closed."""
    with session_scope() as session:
        case = lock_case(session, case_id)
        if review_step(case, number).key != wait_key:
            return case.state is CaseState.CLOSED_COMPLETE
        actor = "unverified"
        try:
            submission = decisions.verified_submission(session, case, wait_key, answer)
            actor = submission.decided_by
            decider = check_entitled(case, submission.decided_by, submission.decided_as,
                                     reviewer_may=True, psd_may=True)
        except (NotAllowedToDecide, decisions.DecisionNotVerified) as exc:
            wait = review_step(case, number)
            case.rejected_inputs += 1
            session.add(case)
            record_rejection(session, case, wait, actor, str(exc))
            return False
        all_closed = apply_action_review(session, case_id, number, answer, decider)
        if all_closed and case.state is CaseState.ACTIONS_MONITORING:
            enter(session, case, CaseState.CLOSED_COMPLETE, actor=decider,
                  action="all_actions_closed")
        return case.state is CaseState.CLOSED_COMPLETE


def case_state(case_id: int) -> CaseState:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.state
