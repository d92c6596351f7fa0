"""The RPRP state machine (domain section 3.2): which moves are legal, and nothing else."""

from __future__ import annotations

from models.enums import TERMINAL_STATES, CaseState

S = CaseState

TRANSITIONS: dict[CaseState, frozenset[CaseState]] = {
    S.REFERRAL_RECEIVED: frozenset({S.AWAITING_ACCOUNT}),
    S.AWAITING_ACCOUNT: frozenset({S.ACCOUNT_RECEIVED, S.NO_ACCOUNT}),
    # A late account is accepted after the deadline passed, before the reviewer decides.
    S.NO_ACCOUNT: frozenset({S.ACCOUNT_RECEIVED, S.FACT_FINDING_DECISION}),
    S.ACCOUNT_RECEIVED: frozenset({S.FACT_FINDING_DECISION}),
    S.FACT_FINDING_DECISION: frozenset({S.FACT_FINDING, S.DISCUSSION_SCHEDULING, S.REFERRED_BACK}),
    S.FACT_FINDING: frozenset({S.DISCUSSION_SCHEDULING, S.REFERRED_BACK}),
    S.REFERRED_BACK: frozenset(
        {
            S.DISCUSSION_SCHEDULING,  # continue, same scope
            S.REFERRAL_RECEIVED,  # continue with a new notice and a new account window
            S.ESCALATED_MISCONDUCT,
            S.ESCALATED_UPP,
            S.ESCALATED_VETTING,
            S.CLOSED_NFA,
        }
    ),
    S.DISCUSSION_SCHEDULING: frozenset(
        {S.DISCUSSION_HELD, S.NON_ENGAGEMENT_REVIEW, S.REFERRED_BACK}
    ),
    S.DISCUSSION_HELD: frozenset({S.REPORT_SUBMITTED, S.REPORT_QUALITY_CHECK, S.REFERRED_BACK}),
    S.REPORT_QUALITY_CHECK: frozenset({S.REPORT_SUBMITTED, S.DISCUSSION_HELD}),
    S.NON_ENGAGEMENT_REVIEW: frozenset(
        {S.DISCUSSION_SCHEDULING, S.ESCALATED_UPP, S.ESCALATED_MISCONDUCT, S.REFERRED_BACK}
    ),
    S.REPORT_SUBMITTED: frozenset({S.ACTIONS_MONITORING}),
    S.ACTIONS_MONITORING: frozenset({S.CLOSED_COMPLETE}),
}

# From any open state: the officer leaves the force, or the referral is withdrawn.
ALWAYS_ALLOWED = frozenset({S.DISCONTINUED, S.CANCELLED})


class IllegalTransition(ValueError):
    """Raised before anything is written, so an illegal move changes nothing."""

    def __init__(self, from_state: CaseState, to_state: CaseState) -> None:
        allowed = ", ".join(sorted(s.value for s in allowed_next(from_state))) or "none"
        super().__init__(
            f"A case in state '{from_state.value}' cannot move to '{to_state.value}' "
            f"(allowed: {allowed})"
        )
        self.from_state = from_state
        self.to_state = to_state


def allowed_next(state: CaseState) -> frozenset[CaseState]:
    if state in TERMINAL_STATES:
        return frozenset()
    return TRANSITIONS.get(state, frozenset()) | ALWAYS_ALLOWED


def check_transition(from_state: CaseState, to_state: CaseState) -> None:
    if to_state not in allowed_next(from_state):
        raise IllegalTransition(from_state, to_state)
