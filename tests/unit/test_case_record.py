"""An illegal move of a stored case raises a clear error and leaves the record as it was."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from infra.db import session_scope
from models import AuditEvent, Case, Deadline, Outbox
from models.enums import CaseState, DeadlineStatus
from models.state import IllegalTransition
from tasks.casework import advance, enter, record_account
from tasks.intake import create_case
from tasks.records import lock_case, transition
from tests.support.cases import sample_referral

S = CaseState


def snapshot(case_id: int) -> dict[str, object]:
    """Everything a transition could touch: the case row, its audit, deadlines and outbox."""
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None

        def count(model: type) -> int:
            query = select(func.count()).select_from(model).where(model.case_id == case_id)
            return int(session.exec(query).one())

        deadlines = session.exec(select(Deadline).where(Deadline.case_id == case_id)).all()
        return {"state": case.state, "transitions": case.transition_count,
                "closed_at": case.closed_at, "audit": count(AuditEvent),
                "outbox": count(Outbox),
                "deadlines": sorted((d.kind.value, d.status.value) for d in deadlines)}


@pytest.fixture
def waiting_case() -> int:
    """A stored case whose notice is served: awaiting the account, its deadline open."""
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor="psd@force.example")
        case_id = case.id
    assert case_id is not None
    assert advance(case_id)[0] is S.AWAITING_ACCOUNT
    return case_id


@pytest.mark.parametrize("to_state", [S.CLOSED_COMPLETE, S.DISCUSSION_HELD, S.ESCALATED_UPP,
                                      S.REPORT_SUBMITTED])
def test_an_illegal_transition_raises_and_changes_nothing(waiting_case: int,
                                                          to_state: CaseState) -> None:
    before = snapshot(waiting_case)
    assert ("account", DeadlineStatus.OPEN.value) in before["deadlines"]  # type: ignore[operator]

    with pytest.raises(IllegalTransition, match="awaiting_account.*cannot move to") as info:
        with session_scope() as session:
            transition(session, lock_case(session, waiting_case), to_state, actor="test",
                       action="illegal")
    assert to_state.value in str(info.value)
    assert snapshot(waiting_case) == before


def test_entering_an_illegal_state_undoes_what_it_did_first(waiting_case: int) -> None:
    """`enter` closes the open decision target before it moves: on an illegal move that is
    undone with the rest."""
    record_account(waiting_case, 1, "An account long enough to be accepted.")
    assert advance(waiting_case)[0] is S.FACT_FINDING_DECISION
    before = snapshot(waiting_case)
    assert ("decision", DeadlineStatus.OPEN.value) in before["deadlines"]  # type: ignore[operator]
    with pytest.raises(IllegalTransition):
        with session_scope() as session:
            enter(session, lock_case(session, waiting_case), S.ACTIONS_MONITORING,
                  actor="test", action="illegal")
    assert snapshot(waiting_case) == before


def test_a_legal_transition_is_recorded_in_the_audit_log(waiting_case: int) -> None:
    before = snapshot(waiting_case)
    with session_scope() as session:
        transition(session, lock_case(session, waiting_case), S.CANCELLED, actor="psd.user",
                   action="cancelled", detail="withdrawn")
    after = snapshot(waiting_case)
    assert after["state"] is S.CANCELLED and after["closed_at"] is not None
    assert after["transitions"] == before["transitions"] + 1  # type: ignore[operator]
    assert ("account", DeadlineStatus.CANCELLED.value) in after["deadlines"]  # type: ignore[operator]
    with session_scope() as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.case_id == waiting_case)
                             .order_by(AuditEvent.id.desc())).first()  # type: ignore[union-attr]
    assert event is not None
    assert (event.actor, event.from_state, event.to_state) == (
        "psd.user", "awaiting_account", "cancelled")


def test_the_account_that_needs_a_wake_flags_the_case_in_its_own_transaction(
        waiting_case: int) -> None:
    """The portal wakes the run after the account's commit; if that wake never happens (its
    process ends, Prefect and the case DB both down), the flag stored with the account is what
    the sweep wakes it by. A late account, which wakes nothing, flags nothing."""
    from tasks.casework import decline_account

    def flagged(case_id: int) -> bool:
        with session_scope() as session:
            case = session.get(Case, case_id)
            assert case is not None
            return case.wake_requested

    assert not flagged(waiting_case)
    _, wake = record_account(waiting_case, 1, "An account long enough to be accepted.")
    assert wake and flagged(waiting_case)

    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor="psd@force.example")
        declined = case.id
    assert declined is not None and advance(declined)[0] is S.AWAITING_ACCOUNT
    assert decline_account(declined, 1) is True and flagged(declined)

    with session_scope() as session:
        case = lock_case(session, waiting_case)
        case.wake_requested = False  # as the wake leaves it
        session.add(case)
    assert advance(waiting_case)[0] is S.FACT_FINDING_DECISION
    _, wake = record_account(waiting_case, 1, "A second version, after the reviewer was asked.")
    assert not wake and not flagged(waiting_case)
