"""Reading and changing the case record: every state change is checked and audited."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from models import AuditEvent, Case, Deadline, Officer, utc_now
from models.enums import CaseState, DeadlineKind, DeadlineStatus
from models.state import check_transition
from tasks import code_version


class CaseNotFound(LookupError):
    pass


def lock_case(session: Session, case_id: int) -> Case:
    """Load a case for change; on PostgreSQL the row is locked until the transaction ends."""
    case = session.get(Case, case_id, with_for_update=True, populate_existing=True)
    if case is None:
        raise CaseNotFound(f"No case with id {case_id}")
    return case


def officer_of(session: Session, case: Case) -> Officer:
    officer = session.get(Officer, case.officer_id)
    assert officer is not None
    return officer


def audit(session: Session, case: Case, *, actor: str, action: str, detail: str = "",
          from_state: CaseState | None = None, to_state: CaseState | None = None) -> None:
    """Append an event; within a flow run it records the flow's and deployment's versions."""
    assert case.id is not None
    versions = code_version.current()
    session.add(
        AuditEvent(case_id=case.id, actor=actor, action=action, detail=detail[:1000],
                   from_state=from_state.value if from_state else None,
                   to_state=to_state.value if to_state else None,
                   flow_version=(versions.flow[:40] or None) if versions else None,
                   deployment_version=(versions.deployment[:80] or None) if versions else None)
    )


def transition(session: Session, case: Case, to_state: CaseState, *, actor: str, action: str,
               detail: str = "") -> None:
    """Move the case, or raise IllegalTransition having changed nothing."""
    check_transition(case.state, to_state)
    from_state = case.state
    case.state = to_state
    case.transition_count += 1
    case.step_answers = 0
    case.updated_at = utc_now()
    if to_state.is_terminal:
        case.closed_at = case.updated_at
        for deadline in open_deadlines(session, case):
            if deadline.kind is DeadlineKind.PDR and to_state is CaseState.CLOSED_COMPLETE:
                continue  # reg 70(6): the PDR discussion is owed after the case closes
            deadline.status = DeadlineStatus.CANCELLED
            session.add(deadline)
    session.add(case)
    audit(session, case, actor=actor, action=action, detail=detail,
          from_state=from_state, to_state=to_state)


def open_deadlines(session: Session, case: Case, kind: DeadlineKind | None = None) -> list[Deadline]:
    query = select(Deadline).where(Deadline.case_id == case.id,
                                   Deadline.status == DeadlineStatus.OPEN)
    if kind is not None:
        query = query.where(Deadline.kind == kind)
    return list(session.exec(query))


def close_deadlines(session: Session, case: Case, kind: DeadlineKind,
                    status: DeadlineStatus = DeadlineStatus.MET, *, round: int | None = None,
                    now: datetime | None = None) -> list[Deadline]:
    """Close the case's open deadlines of `kind` (of one round, if given): met at `now`, or
    cancelled or missed; returns them."""
    closed = []
    for deadline in open_deadlines(session, case, kind):
        if round is not None and deadline.round != round:
            continue
        deadline.status = status
        if status is DeadlineStatus.MET:
            deadline.met_at = now or utc_now()
        session.add(deadline)
        closed.append(deadline)
    return closed
