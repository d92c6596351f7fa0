"""What people read for a stored code: one place that turns the case record's codes (enum values,
audit actions, deadline kinds and rounds) into words for pages, letters and subjects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from models.case import Deadline
from models.choices import (
    AuthorityChoice,
    DiscussionChoice,
    FactFindingChoice,
    FactFindingOutcomeChoice,
    NonEngagementChoice,
)
from models.enums import DeadlineKind


def label(value: Any) -> str:
    """An enum's own label, or a code read as words ('on_leave' -> 'On leave')."""
    if value is None:
        return ""
    own = getattr(value, "label", None)
    if isinstance(own, str):
        return own
    return str(getattr(value, "value", value)).replace("_", " ").capitalize()


def deadline_label(deadline: Deadline) -> str:
    """'The officer's account (notice 2)', 'Action-plan review 3'; a round is shown only where it
    means something to a reader (for decisions it is an internal step count)."""
    kind = DeadlineKind(deadline.kind)
    if kind is DeadlineKind.ACCOUNT and deadline.round > 1:
        return f"{kind.label} (notice {deadline.round})"
    if kind is DeadlineKind.ACTION_REVIEW:
        return f"{kind.label} {deadline.round}"
    if kind is DeadlineKind.COMPLAINANT_UPDATE:
        return f"Progress update {deadline.round} to the complainant"
    return kind.label


# Decisions are audited as "<step>:<choice name>"; the step's title and the choice's wording.
DECISION_STEPS: dict[str, tuple[str, type[StrEnum]]] = {
    "fact_finding_decision": ("Fact-finding decision", FactFindingChoice),
    "fact_finding_outcome": ("Outcome of fact-finding", FactFindingOutcomeChoice),
    "authority_decision": ("Appropriate authority decision", AuthorityChoice),
    "discussion_outcome": ("Discussion outcome", DiscussionChoice),
    "non_engagement": ("Decision on non-engagement", NonEngagementChoice),
}

AUDIT_ACTIONS = {
    "referral_received": "Referral received",
    "notice_served": "Notice served on the officer",
    "account_received": "Account received",
    "account_viewed": "Account read",
    "account_deadline_missed": "No account by the deadline",
    "fact_finding_decision_pending": "Fact-finding decision needed",
    "report_submitted": "Report submitted",
    "report_filed": "Report filed",
    "actions_monitoring": "Action plan being followed up",
    "action_review_recorded": "Action-plan review recorded",
    "all_actions_closed": "Every action closed",
    "decision_rejected": "Answer not accepted",
    "discontinued": "Discontinued",
    "cancelled": "Cancelled",
}


def audit_action_label(action: str) -> str:
    """'fact_finding_decision:NO_FACT_FINDING' -> 'Fact-finding decision — No fact-finding
    needed: go to the discussion'; an unknown code is read as words."""
    step, _, detail = action.partition(":")
    if step in DECISION_STEPS and detail:
        title, choices = DECISION_STEPS[step]
        choice = choices.__members__.get(detail)
        return f"{title} — {choice.value if choice else label(detail)}"
    if step in AUDIT_ACTIONS:
        return AUDIT_ACTIONS[step]
    return label(step)
