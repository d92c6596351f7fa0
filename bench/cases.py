"""Referrals and answers the bench sends: the product's samples (rprp.samples), as the demo and
the tests build them."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from rprp import samples
from rprp.samples import PSD as PSD  # the bench's people and report are the samples'
from rprp.samples import REVIEWER as REVIEWER
from rprp.samples import report_answer as report_answer

if TYPE_CHECKING:
    from tasks.intake import ReferralIn


def referral_data(**overrides: Any) -> dict[str, Any]:
    """A valid referral body for POST /api/referrals; every call names a new officer."""
    return samples.referral_data(label="bench", **overrides)


def sample_referral(**overrides: Any) -> ReferralIn:
    """The same, as the case record takes it."""
    from tasks.intake import ReferralIn

    return ReferralIn.model_validate(referral_data(**overrides))


def fact_finding_answer() -> dict[str, Any]:
    return {"choice": "No fact-finding needed: go to the discussion"}


def discussion_answer() -> dict[str, Any]:
    return {"choice": "Discussion held and the officer engaged",
            "held_on": date.today().isoformat()}


def open_case_in_db() -> int:
    """What the portal does first on a valid referral: store the case (no flow run yet)."""
    from infra.db import session_scope
    from tasks.intake import create_case

    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        assert case.id is not None
        return case.id


def remember_review(case_id: int, review_run: str) -> int:
    """What the sweep records when it opens a case's first action-plan review
    (tasks.deadline_sweep.start_due_reviews): the run that asks it. Returns the id of the
    case's first action, whose fields the review's form names."""
    from sqlmodel import select

    from infra.db import session_scope
    from models import Action, ActionReview

    with session_scope() as session:
        review = session.exec(select(ActionReview).where(
            ActionReview.case_id == case_id, ActionReview.number == 1)).one()
        review.flow_run_id = review_run
        session.add(review)
        action = session.exec(select(Action).where(Action.case_id == case_id)).first()
        assert action is not None and action.id is not None
        return action.id
