"""The rules an answer must pass before the case moves, whichever door it came through: its
content (all errors at once, in the form's words), the gateway's record of who sent it, and the
confidential text sealed for its step. No Prefect and no forms here (tasks/decisions.py builds
and parses the forms), so the rules run against the case DB alone.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models import AuditEvent, Case, DecisionSubmission, DiscussionInvitation, SealedText, as_utc
from models.choices import AGREED_ON_TITLE, HELD_ON_TITLE, Agreement, DiscussionChoice
from models.enums import MeetingOutcome
from tasks.calendar import LONDON
from tasks.deadlines import date_text
from tasks.records import officer_of
from tasks.steps import StepKind

SEAL_PREFIX = "sealed:"


class DecisionNotVerified(PermissionError):
    """An answer reached the flow without a matching gateway submission."""


def today_in_london(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(LONDON).date()


def discussion_date(session: Session, case: Case) -> date | None:
    """When the discussion was held: the date the reviewer recorded on the discussion step, or
    else the day of the invitation it was recorded against."""
    event = session.exec(
        select(AuditEvent).where(
            AuditEvent.case_id == case.id,
            AuditEvent.action == f"discussion_outcome:{DiscussionChoice.HELD_ENGAGED.name}")
        .order_by(AuditEvent.id.desc())  # type: ignore[union-attr]
    ).first()
    if event is None:
        return None
    if event.detail.startswith("on "):
        return _recorded_date(event.detail.removeprefix("on ").strip())
    invitation = session.exec(
        select(DiscussionInvitation).where(
            DiscussionInvitation.case_id == case.id,
            DiscussionInvitation.outcome == MeetingOutcome.HELD_ENGAGED)
        .order_by(DiscussionInvitation.id.desc())  # type: ignore[union-attr]
    ).first()
    return as_utc(invitation.starts_at).astimezone(LONDON).date() if invitation else None


def _recorded_date(text: str) -> date | None:
    """A date as the audit trail words it ("Wednesday 2 December 2026"), or as ISO in rows
    written before the trail spoke in words."""
    for parse in (lambda t: datetime.strptime(t, "%A %d %B %Y").date(), date.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    return None


def problems(session: Session, case: Case, kind: str, answer: Any,
             now: datetime | None = None) -> list[str]:
    """What the domain rules say is wrong with a well-formed answer (empty: nothing)."""
    today = today_in_london(now)
    found: list[str] = []
    if kind == StepKind.DISCUSSION_OUTCOME:
        title = HELD_ON_TITLE
        if answer.held_on is not None and answer.held_on > today:
            found.append(f"'{title}' cannot be in the future")
        if answer.held_on is not None and answer.held_on < case.referred_on:
            found.append(f"'{title}' cannot be before the case was referred "
                         f"({date_text(case.referred_on)})")
    elif kind == StepKind.REPORT:
        title = AGREED_ON_TITLE
        if answer.agreed_on > today:
            found.append(f"'{title}' cannot be in the future")
        held = discussion_date(session, case)
        if held is not None and answer.agreed_on < held:
            found.append(f"'{title}' cannot be before the discussion ({date_text(held)})")
        for number, action in enumerate(answer.actions, start=1):
            if action.due_on < answer.agreed_on:
                found.append(f"Action {number}: the due date must be on or after '{title}'")
        if answer.agreement is Agreement.NOT_AGREED and not answer.officer_comments.strip():
            found.append("Record the officer's comments when they do not agree the report")
    elif kind == StepKind.REPORT_QUALITY_CHECK:
        if answer.choice.name == "RETURN" and len(answer.comments.strip()) < 3:
            found.append("Write your comments for the reviewer when you return the report")
    elif kind in (StepKind.AUTHORITY_DECISION, StepKind.NON_ENGAGEMENT):
        if answer.choice.name == "UPP" and not officer_of(session, case).upp_available:
            found.append("UPP does not apply to this officer (probationer constable or rank "
                         "above chief superintendent)")
    return found


def refusal(messages: list[str]) -> str:
    """The reason the Prefect UI shows in its red toast."""
    return "This decision was not accepted. " + " ".join(
        m if m.endswith(".") else f"{m}." for m in messages)


def unseal(session: Session, case: Case, step_key: str, value: str) -> str:
    """The confidential text a reference stands for, if it was sealed for this case's step."""
    if not value.startswith(SEAL_PREFIX):
        raise DecisionNotVerified("A confidential field arrived without being sealed")
    row = session.exec(select(SealedText).where(
        SealedText.token == value.removeprefix(SEAL_PREFIX))).first()
    if row is None or row.case_id != case.id or row.step_key != step_key:
        raise DecisionNotVerified("A sealed field does not belong to this step")
    return row.text


def input_hash(answer: BaseModel) -> str:
    """A hash of the answer as Prefect holds it (canonical JSON), leaving out the fields left at
    their defaults: a form that gained a field with a default while the case waited (the
    gateway on one version, the flow on the next) hashes the same answer the same way."""
    return _hash(answer.model_dump(mode="json", exclude_defaults=True))


def legacy_input_hash(answer: BaseModel) -> str:
    """The hash of every field, defaults included: what submissions recorded before
    `input_hash` left defaults out, still accepted for them."""
    return _hash(answer.model_dump(mode="json"))


def _hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def verified_submission(session: Session, case: Case, step_key: str,
                        answer: BaseModel) -> DecisionSubmission:
    """The gateway's row for exactly this answer to this step, or DecisionNotVerified."""
    row = session.exec(select(DecisionSubmission).where(
        DecisionSubmission.case_id == case.id, DecisionSubmission.step_key == step_key,
        col(DecisionSubmission.input_hash).in_([input_hash(answer), legacy_input_hash(answer)]),
    ).order_by(DecisionSubmission.id.desc())).first()  # type: ignore[union-attr]
    if row is None:
        raise DecisionNotVerified("No decision for this step came through the portal's "
                                  "gateway: it was not applied")
    return row
