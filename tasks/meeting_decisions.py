"""The Case Review Committee's decision on a reflective practice meeting, from the gateway to
the flow, Prefect-free: which pause the meeting's run waits on, whether this person may decide,
what is wrong with the answer (a recorded name in the plan above all), the plan sealed into this
database, and the submission row by which the flow knows the decision came through the gateway
and who took it. The gateway calls `take` before Prefect sees anything; the flow calls
`verified` and reads the plan back.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from models.meetings import CrcChoice, CrcSubmission, Meeting, MeetingEvent, MeetingState
from tasks import meetings as rules

SEAL_PREFIX = "sealed:"
CRC_STEP = "crc-consideration"


class CrcDecisionNotVerified(PermissionError):
    """An answer reached the flow without a matching gateway submission."""


@dataclass(frozen=True)
class CrcStep:
    """The CRC's pause a meeting's run waits on: its meeting and the pause key."""

    meeting_id: int
    flow_run_id: str
    key: str


def crc_step_key(session: Session, meeting_id: int) -> str:
    """The pause key of the CRC's form: each refused answer asks again under a new key."""
    refusals = len(session.exec(select(MeetingEvent.id).where(
        MeetingEvent.meeting_id == meeting_id,
        MeetingEvent.action == "crc_answer_refused")).all())
    return f"{CRC_STEP}-{refusals}"


def meeting_of_run(session: Session, flow_run_id: str) -> Meeting | None:
    return session.exec(select(Meeting).where(Meeting.flow_run_id == flow_run_id)).first()


def step_waiting_on(session: Session, meeting: Meeting) -> CrcStep | None:
    """The CRC's step, if the meeting's record says its run waits on it now."""
    if meeting.state is not MeetingState.SENT_TO_BUSINESS_UNIT or not meeting.flow_run_id:
        return None
    assert meeting.id is not None
    return CrcStep(meeting.id, meeting.flow_run_id, crc_step_key(session, meeting.id))


def answer_hash(answer: dict[str, Any]) -> str:
    """A hash of the answer exactly as Prefect holds it (canonical JSON)."""
    canonical = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def problems(session: Session, meeting: Meeting, data: Any) -> tuple[CrcChoice | None, str,
                                                                      list[str]]:
    """The choice and plan of an answer, and everything wrong with it (in the form's words,
    never echoing what was typed, least of all a name)."""
    if not isinstance(data, dict):
        return None, "", ["The form was not sent properly: reload the page and try again"]
    errors: list[str] = []
    try:
        choice: CrcChoice | None = CrcChoice(str(data.get("decision", "")))
    except ValueError:
        choice = None
        errors.append("Choose one of the options for 'What the Case Review Committee decides'")
    plan = data.get("plan", "")
    if not isinstance(plan, str):
        return choice, "", errors + ["The plan must be text"]
    plan = plan.strip()
    if choice is CrcChoice.PLAN_ACTION and not plan:
        errors.append("Planning action needs the plan")
    found = rules.names_in(plan, rules.names_recorded(session, meeting))
    if found:
        whose = "; ".join(sorted({kind for kind, _ in found}))
        errors.append(f"The plan holds a name recorded in the meeting ({whose} name): write "
                      "roles and agencies only")
    return choice, plan, errors


def take(session: Session, meeting: Meeting, step: CrcStep, data: Any, decided_by: str,
         ) -> tuple[dict[str, Any] | None, list[str], CrcSubmission | None]:
    """Check the answer, seal its plan, record the submission; returns (what to forward to
    Prefect, [], the submission) or (None, errors, None) with nothing stored."""
    choice, plan, errors = problems(session, meeting, data)
    if errors or choice is None:
        return None, errors, None
    token = secrets.token_hex(16)
    forwarded = {"decision": choice.value, "plan": f"{SEAL_PREFIX}{token}"}
    submission = CrcSubmission(meeting_id=step.meeting_id, step_key=step.key,
                               flow_run_id=step.flow_run_id,
                               decided_by=decided_by.strip().lower(), token=token, plan=plan,
                               input_hash=answer_hash(forwarded))
    session.add(submission)
    session.flush()
    return forwarded, [], submission


def withdraw(session: Session, submission_id: int) -> None:
    """Prefect did not take the answer: forget its submission and the plan sealed with it."""
    row = session.get(CrcSubmission, submission_id)
    if row is not None:
        session.delete(row)


def verified(session: Session, meeting_id: int, step_key: str,
             answer: dict[str, Any]) -> CrcSubmission:
    """The gateway's row for exactly this answer to this pause, or CrcDecisionNotVerified."""
    plan = str(answer.get("plan", ""))
    if not plan.startswith(SEAL_PREFIX):
        raise CrcDecisionNotVerified("The plan arrived without being sealed: the decision did "
                                     "not come through the portal's gateway")
    row = session.exec(select(CrcSubmission).where(
        CrcSubmission.meeting_id == meeting_id, CrcSubmission.step_key == step_key,
        CrcSubmission.token == plan.removeprefix(SEAL_PREFIX),
        CrcSubmission.input_hash == answer_hash(answer),
    ).order_by(col(CrcSubmission.id).desc())).first()
    if row is None:
        raise CrcDecisionNotVerified("No decision for this step came through the portal's "
                                     "gateway: it was not applied")
    return row
