"""Every state transition, legal and illegal (domain section 3.2)."""

from __future__ import annotations

import pytest

from models.enums import TERMINAL_STATES, CaseState
from models.state import (
    ALWAYS_ALLOWED,
    TRANSITIONS,
    IllegalTransition,
    allowed_next,
    check_transition,
)

S = CaseState

EXPECTED = {
    S.REFERRAL_RECEIVED: {S.AWAITING_ACCOUNT},
    S.AWAITING_ACCOUNT: {S.ACCOUNT_RECEIVED, S.NO_ACCOUNT},
    S.NO_ACCOUNT: {S.ACCOUNT_RECEIVED, S.FACT_FINDING_DECISION},
    S.ACCOUNT_RECEIVED: {S.FACT_FINDING_DECISION},
    S.FACT_FINDING_DECISION: {S.FACT_FINDING, S.DISCUSSION_SCHEDULING, S.REFERRED_BACK},
    S.FACT_FINDING: {S.DISCUSSION_SCHEDULING, S.REFERRED_BACK},
    S.REFERRED_BACK: {S.DISCUSSION_SCHEDULING, S.REFERRAL_RECEIVED, S.ESCALATED_MISCONDUCT,
                      S.ESCALATED_UPP, S.ESCALATED_VETTING, S.CLOSED_NFA},
    S.DISCUSSION_SCHEDULING: {S.DISCUSSION_HELD, S.NON_ENGAGEMENT_REVIEW, S.REFERRED_BACK},
    S.DISCUSSION_HELD: {S.REPORT_SUBMITTED, S.REPORT_QUALITY_CHECK, S.REFERRED_BACK},
    S.REPORT_QUALITY_CHECK: {S.REPORT_SUBMITTED, S.DISCUSSION_HELD},
    S.NON_ENGAGEMENT_REVIEW: {S.DISCUSSION_SCHEDULING, S.ESCALATED_UPP, S.ESCALATED_MISCONDUCT,
                              S.REFERRED_BACK},
    S.REPORT_SUBMITTED: {S.ACTIONS_MONITORING},
    S.ACTIONS_MONITORING: {S.CLOSED_COMPLETE},
}

ALL_PAIRS = [(a, b) for a in CaseState for b in CaseState]


def expected_legal(a: CaseState, b: CaseState) -> bool:
    if a in TERMINAL_STATES:
        return False
    return b in EXPECTED[a] or b in (S.DISCONTINUED, S.CANCELLED)


def test_every_open_state_has_its_moves_listed() -> None:
    open_states = set(CaseState) - TERMINAL_STATES
    assert set(TRANSITIONS) == open_states
    assert {a: set(b) for a, b in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("from_state", "to_state"), ALL_PAIRS,
                         ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_transition_is_legal_exactly_when_the_process_allows_it(
        from_state: CaseState, to_state: CaseState) -> None:
    if expected_legal(from_state, to_state):
        check_transition(from_state, to_state)
        assert to_state in allowed_next(from_state)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition(from_state, to_state)
        assert from_state.value in str(info.value) and to_state.value in str(info.value)


@pytest.mark.parametrize("state", sorted(set(CaseState) - TERMINAL_STATES))
def test_officer_leaving_or_cancellation_ends_any_open_case(state: CaseState) -> None:
    assert ALWAYS_ALLOWED <= allowed_next(state)


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_terminal_states_go_nowhere(state: CaseState) -> None:
    assert allowed_next(state) == frozenset()
    assert state.is_terminal


def test_missed_account_is_not_an_escalation() -> None:
    """The account is optional: no path from the account stage leads straight to escalation."""
    for state in (S.AWAITING_ACCOUNT, S.NO_ACCOUNT, S.ACCOUNT_RECEIVED):
        assert not {s for s in allowed_next(state) if s.name.startswith("ESCALATED")}
