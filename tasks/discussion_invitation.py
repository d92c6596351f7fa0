"""The officer's invitation to the Reflective Practice Review Discussion, with its calendar file.

The reviewer proposes a date, time and place (or a call) at the discussion step; the officer is
emailed an invitation with an `.ics` (iCalendar, METHOD:REQUEST) through the outbox, in the same
transaction. Moving the meeting sends the next SEQUENCE of the same UID, which replaces the entry
in the officer's calendar; cancelling sends METHOD:CANCEL. The sweep reminds the officer and the
reviewer on the working day before, once per version. The outcome ("did not attend") is
recorded on the version the officer was sent, so the non-engagement decision has the facts.

Times are entered in UK time (Europe/London) and stored in UTC. Nothing confidential goes into
an invitation: the case reference, the reviewer, when and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from icalendar import Calendar, Event, vCalAddress, vText
from sqlmodel import Session, col, select

from infra.db import session_scope
from infra.settings import get_settings
from models import Case, Deadline, DiscussionInvitation, Officer, as_utc
from models.choices import DiscussionChoice
from models.enums import (
    CaseState,
    DeadlineKind,
    DeadlineStatus,
    InvitationStatus,
    MeetingFormat,
    MeetingOutcome,
)
from tasks.calendar import LONDON, england_and_wales
from tasks.deadlines import date_text
from tasks.links import case_link
from tasks.outbox import Attachment, enqueue
from tasks.records import audit, officer_of

SUMMARY = "Reflective Practice Review Discussion"
PRODID = "-//RPRP//Reflective Practice Review Process//EN"
OUTCOMES = {
    DiscussionChoice.HELD_ENGAGED: MeetingOutcome.HELD_ENGAGED,
    DiscussionChoice.DID_NOT_ATTEND: MeetingOutcome.DID_NOT_ATTEND,
    DiscussionChoice.DID_NOT_ENGAGE: MeetingOutcome.DID_NOT_ENGAGE,
}
OUTCOME_TEXT = {
    MeetingOutcome.HELD_ENGAGED: "held; the officer engaged",
    MeetingOutcome.DID_NOT_ATTEND: "the officer did not attend",
    MeetingOutcome.DID_NOT_ENGAGE: "the officer attended but did not engage",
}


class InvitationRejected(ValueError):
    """The proposal or outcome breaks a rule: the reason is shown and nothing changes."""


@dataclass(frozen=True)
class Proposal:
    """What the reviewer proposes: when (UTC), for how long, how and where."""

    starts_at: datetime
    duration_minutes: int
    meeting_format: MeetingFormat
    place: str


def meeting_text(starts_at: datetime) -> str:
    """'Thursday 10 December 2026, 10:00' in UK time: how a meeting reads everywhere."""
    local = as_utc(starts_at).astimezone(LONDON)
    return f"{date_text(local.date())}, {local:%H:%M}"


def london_start(day: date, hhmm: str) -> datetime:
    """The UTC instant of `hhmm` UK time on `day`; a time the clocks skip is refused."""
    hours, _, minutes = hhmm.strip().replace(".", ":").partition(":")
    try:
        local = datetime.combine(day, time(int(hours), int(minutes)), tzinfo=LONDON)
    except ValueError as exc:
        raise InvitationRejected(f"Enter the start time as hours and minutes, like 10:00 "
                                 f"(got '{hhmm}')") from exc
    instant = local.astimezone(UTC)
    if instant.astimezone(LONDON).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise InvitationRejected(f"{hhmm} does not exist in the UK on {date_text(day)}: the "
                                 "clocks go forward then. Choose another time")
    return instant


def proposal_from(answer: Any) -> Proposal:
    """Read the date, time and place of the form, or refuse with every missing part named."""
    missing = []
    if answer.meeting_date is None:
        missing.append("the date of the meeting")
    if not answer.meeting_time.strip():
        missing.append("the start time")
    if not answer.place.strip():
        missing.append("the place" if answer.meeting_format is MeetingFormat.IN_PERSON
                       else "the phone number or video link of the call")
    if missing:
        raise InvitationRejected("To invite the officer or move the meeting, enter "
                                 + _and(missing))
    return Proposal(london_start(answer.meeting_date, answer.meeting_time),
                    answer.duration_minutes, answer.meeting_format, " ".join(answer.place.split()))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_proposal(starts_at: datetime, now: datetime, target_due_at: datetime | None) -> str:
    """Refuse a meeting in the past; return a warning (or "") if it is beyond the force's target.

    The target is the discussion deadline set when the case reached this step (force policy,
    `RPRP_DISCUSSION_TARGET_WORKING_DAYS`); a later date is allowed, as shift patterns may need
    it, but the reviewer is told.
    """
    if as_utc(starts_at) <= as_utc(now):
        raise InvitationRejected(f"The proposed meeting, {meeting_text(starts_at)}, is in the "
                                 "past: choose a date and time still to come")
    if target_due_at is not None and (as_utc(starts_at).astimezone(LONDON).date()
                                      > as_utc(target_due_at).astimezone(LONDON).date()):
        return (f"{meeting_text(starts_at)} is after the force's target for the discussion, "
                f"{date_text(target_due_at)} ({get_settings().discussion_target_working_days} "
                "working days): hold it sooner if you can")
    return ""


def discussion_target(session: Session, case: Case) -> Deadline | None:
    return session.exec(
        select(Deadline).where(Deadline.case_id == case.id,
                               Deadline.kind == DeadlineKind.DISCUSSION,
                               Deadline.status == DeadlineStatus.OPEN)
        .order_by(col(Deadline.id).desc())
    ).first()


def invitations(session: Session, case: Case) -> list[DiscussionInvitation]:
    """Every version sent for the case, oldest first."""
    return list(session.exec(select(DiscussionInvitation)
                             .where(DiscussionInvitation.case_id == case.id)
                             .order_by(col(DiscussionInvitation.id))))


def current_invitation(session: Session, case: Case) -> DiscussionInvitation | None:
    """The version in force: sent, not replaced or cancelled, no outcome recorded yet."""
    return session.exec(
        select(DiscussionInvitation).where(
            DiscussionInvitation.case_id == case.id,
            DiscussionInvitation.status == InvitationStatus.SENT,
            col(DiscussionInvitation.outcome).is_(None))
        .order_by(col(DiscussionInvitation.id).desc())
    ).first()


def describe(invitation: DiscussionInvitation) -> str:
    """One line for pages, audit details and descriptions: when, how, where, which version."""
    where = invitation.place if invitation.meeting_format is MeetingFormat.IN_PERSON else (
        f"{invitation.meeting_format.value.lower()}: {invitation.place}")
    return (f"{meeting_text(invitation.starts_at)} ({invitation.duration_minutes} minutes), "
            f"{where} (meeting {invitation.meeting}, version {invitation.sequence + 1})")


def apply_discussion_answer(session: Session, case: Case, answer: Any, decider: str,
                            now: datetime | None) -> MeetingOutcome | None:
    """Invite, move or cancel (the case stays at this step), or record the outcome against the
    invitation; returns the outcome, or None when the step is to be asked again."""
    now = as_utc(now or datetime.now(UTC))
    choice = answer.choice
    officer = officer_of(session, case)
    current = current_invitation(session, case)
    if choice is DiscussionChoice.INVITE:
        if current is not None:
            raise InvitationRejected(f"The officer is already invited, {describe(current)}: "
                                     "choose 'Move the meeting' to change it")
        _send_version(session, case, officer, proposal_from(answer), decider, now, None)
        return None
    if choice is DiscussionChoice.MOVE:
        if current is None:
            raise InvitationRejected("There is no invitation to move: choose 'Invite the "
                                     "officer'")
        proposal = proposal_from(answer)
        if (as_utc(current.starts_at), current.duration_minutes, current.meeting_format,
                current.place) == (proposal.starts_at, proposal.duration_minutes,
                                   proposal.meeting_format, proposal.place):
            raise InvitationRejected(f"The meeting is already {describe(current)}: change the "
                                     "date, time or place to move it")
        _send_version(session, case, officer, proposal, decider, now, current)
        return None
    if choice is DiscussionChoice.CANCEL:
        if current is None:
            raise InvitationRejected("There is no invitation to cancel")
        cancel(session, case, officer, current, decider, now)
        return None
    return record_outcome(session, case, current, OUTCOMES[choice], answer.held_on, decider, now)


def invitation_problems(session: Session, case: Case, answer: Any,
                        now: datetime | None = None) -> list[str]:
    """What `apply_discussion_answer` would refuse, found without changing anything.

    The gateway asks this before Prefect sees the answer, so a reviewer whose invitation breaks
    a rule (no date, a time in the past, nothing to move) is told at once in the Resume form,
    with what they typed still in it, instead of seeing "resumed" and a refusal later.
    """
    now = as_utc(now or datetime.now(UTC))
    choice = answer.choice
    current = current_invitation(session, case)
    try:
        if choice is DiscussionChoice.INVITE:
            if current is not None:
                raise InvitationRejected(f"The officer is already invited, {describe(current)}: "
                                         "choose 'Move the meeting' to change it")
            check_proposal(proposal_from(answer).starts_at, now, None)
        elif choice is DiscussionChoice.MOVE:
            if current is None:
                raise InvitationRejected("There is no invitation to move: choose 'Invite the "
                                         "officer'")
            check_proposal(proposal_from(answer).starts_at, now, None)
        elif choice is DiscussionChoice.CANCEL:
            if current is None:
                raise InvitationRejected("There is no invitation to cancel")
        elif current is None and choice is DiscussionChoice.DID_NOT_ATTEND:
            raise InvitationRejected("The officer has not been sent an invitation, so "
                                     "non-attendance cannot be recorded: choose 'Invite the "
                                     "officer' first")
        elif current is None and answer.held_on is None:
            raise InvitationRejected("Enter the date the discussion was held")
    except InvitationRejected as exc:
        return [str(exc)]
    return []


def _send_version(session: Session, case: Case, officer: Officer, proposal: Proposal,
                  decider: str, now: datetime, previous: DiscussionInvitation | None) -> None:
    target = discussion_target(session, case)
    warning = check_proposal(proposal.starts_at, now, target.due_at if target else None)
    meeting, sequence = _next_version(session, case, previous)
    assert case.id is not None
    invitation = DiscussionInvitation(
        case_id=case.id, meeting=meeting, sequence=sequence, uid=_uid(case, meeting),
        starts_at=proposal.starts_at, duration_minutes=proposal.duration_minutes,
        meeting_format=proposal.meeting_format, place=proposal.place,
        beyond_target=bool(warning), target_due_at=target.due_at if target else None,
        invited_by=decider, created_at=now)
    replaced = ""
    if previous is not None:
        previous.status = InvitationStatus.REPLACED
        session.add(previous)
        replaced = meeting_text(previous.starts_at)
    session.add(invitation)
    session.flush()
    _bump_step(session, case)
    action = "discussion_moved" if previous else "discussion_invited"
    audit(session, case, actor=decider, action=action,
          detail=describe(invitation) + (f"; replaces {replaced}" if replaced else "")
          + (f". Flagged: {warning}" if warning else ""))
    _email(session, case, officer, "discussion_invitation", invitation,
           _calendar(case, officer, invitation, "REQUEST"), replaces_text=replaced)


def _next_version(session: Session, case: Case,
                  previous: DiscussionInvitation | None) -> tuple[int, int]:
    """A move is the next SEQUENCE of the same meeting; otherwise a new meeting starts at 0."""
    if previous is not None:
        return previous.meeting, previous.sequence + 1
    sent = invitations(session, case)
    return (sent[-1].meeting + 1 if sent else 1), 0


def cancel(session: Session, case: Case, officer: Officer, current: DiscussionInvitation,
           actor: str, now: datetime, reason: str = "") -> None:
    """Withdraw the meeting: a cancelling version (METHOD:CANCEL) removes it from the calendar."""
    assert case.id is not None
    cancelled = DiscussionInvitation(
        case_id=case.id, meeting=current.meeting, sequence=current.sequence + 1, uid=current.uid,
        starts_at=current.starts_at, duration_minutes=current.duration_minutes,
        meeting_format=current.meeting_format, place=current.place,
        status=InvitationStatus.CANCELLED, invited_by=actor, created_at=as_utc(now))
    current.status = InvitationStatus.REPLACED
    session.add(current)
    session.add(cancelled)
    session.flush()
    if case.state is CaseState.DISCUSSION_SCHEDULING and not reason:
        _bump_step(session, case)
    audit(session, case, actor=actor, action="discussion_cancelled",
          detail=describe(cancelled) + (f"; {reason}" if reason else ""))
    _email(session, case, officer, "discussion_cancelled", cancelled,
           _calendar(case, officer, cancelled, "CANCEL"))


def withdraw_if_leaving(session: Session, case: Case, to_state: CaseState, actor: str,
                        now: datetime | None = None) -> None:
    """The case leaves the discussion step without an outcome (referred back, closed): the
    officer's calendar entry is cancelled, not left standing."""
    if case.state is not CaseState.DISCUSSION_SCHEDULING or to_state in (
            CaseState.DISCUSSION_HELD, CaseState.NON_ENGAGEMENT_REVIEW):
        return
    current = current_invitation(session, case)
    if current is not None:
        cancel(session, case, officer_of(session, case), current, actor,
               now or datetime.now(UTC), reason=f"the case moved to {to_state.label.lower()}")


def record_outcome(session: Session, case: Case, current: DiscussionInvitation | None,
                   outcome: MeetingOutcome, held_on: date | None, decider: str,
                   now: datetime) -> MeetingOutcome:
    """Record how the meeting went on the invitation the officer was sent.

    "Did not attend" needs an invitation: non-attendance is a fact only about a meeting the
    officer was invited to.
    """
    if current is None and outcome is MeetingOutcome.DID_NOT_ATTEND:
        raise InvitationRejected("The officer has not been sent an invitation, so non-attendance "
                                 "cannot be recorded: choose 'Invite the officer' first")
    if current is None and held_on is None:
        raise InvitationRejected("Enter the date the discussion was held")
    if current is not None:
        current.outcome = outcome
        current.outcome_recorded_by = decider
        current.outcome_recorded_at = now
        session.add(current)
        day = held_on or as_utc(current.starts_at).astimezone(LONDON).date()
        detail = (f"{OUTCOME_TEXT[outcome]} on {date_text(day)}; invitation "
                  f"{describe(current)}, sent {date_text(current.created_at)} to the officer")
    else:
        assert held_on is not None
        detail = f"{OUTCOME_TEXT[outcome]} on {date_text(held_on)}; no invitation was sent here"
    audit(session, case, actor=decider, action="discussion_outcome_recorded", detail=detail)
    return outcome


def _bump_step(session: Session, case: Case) -> None:
    """The case stays at this step: ask it again, with a new key, showing the invitation."""
    case.step_answers += 1
    session.add(case)


def _uid(case: Case, meeting: int) -> str:
    domain = get_settings().smtp_sender.rpartition("@")[2] or "rprp.invalid"
    return f"rprp-{case.reference.lower()}-discussion-{meeting}@{domain}"


def _calendar(case: Case, officer: Officer, invitation: DiscussionInvitation,
              method: str) -> Attachment:
    """The iCalendar file: one VEVENT, the reviewer organising, the officer invited."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", invitation.uid)
    event.add("sequence", invitation.sequence)
    event.add("dtstamp", as_utc(invitation.created_at))
    starts_at = as_utc(invitation.starts_at)
    event.add("dtstart", starts_at)
    event.add("dtend", starts_at + timedelta(minutes=invitation.duration_minutes))
    event.add("summary", f"{SUMMARY} ({case.reference})")
    event.add("location", _location(invitation))
    event.add("description", f"{SUMMARY} with {case.reviewer_name}, case {case.reference}. "
                             f"{invitation.meeting_format.value}: {invitation.place}")
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{case.reviewer_email}")
    organizer.params["cn"] = vText(case.reviewer_name)
    event["organizer"] = organizer
    attendee = vCalAddress(f"mailto:{officer.email}")
    attendee.params.update({"cn": vText(officer.name), "role": vText("REQ-PARTICIPANT"),
                            "partstat": vText("NEEDS-ACTION"), "rsvp": vText("TRUE")})
    event.add("attendee", attendee, encode=False)
    calendar.add_component(event)
    return Attachment(filename="invitation.ics" if method == "REQUEST" else "cancellation.ics",
                      content_type=f"text/calendar; method={method}",
                      body=calendar.to_ical().decode("utf-8"))


def _location(invitation: DiscussionInvitation) -> str:
    if invitation.meeting_format is MeetingFormat.IN_PERSON:
        return invitation.place
    return f"{invitation.meeting_format.value}: {invitation.place}"


def _email(session: Session, case: Case, officer: Officer, kind: str,
           invitation: DiscussionInvitation, attachment: Attachment, **extra: Any) -> None:
    assert case.id is not None
    enqueue(session, key=f"{case.id}:{kind}:{officer.email}:m{invitation.meeting}"
                         f"s{invitation.sequence}",
            kind=kind, recipient=officer.email, case_id=case.id, attachment=attachment,
            context={"case": case, "officer": officer, **_meeting_context(case, invitation),
                     **extra})


def _meeting_context(case: Case, invitation: DiscussionInvitation) -> dict[str, Any]:
    return {"reviewer_name": case.reviewer_name,
            "meeting_text": meeting_text(invitation.starts_at),
            "duration_minutes": invitation.duration_minutes,
            "format_label": invitation.meeting_format.value,
            "place": invitation.place}


def working_day_before(day: date) -> date:
    calendar = england_and_wales()
    day -= timedelta(days=1)
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    return day


def reminders_due(session: Session, as_of: datetime
                  ) -> list[tuple[DiscussionInvitation, Case, Officer]]:
    """Invitations whose meeting is from the working day before it until it starts, as of
    `as_of`: the ones the sweep reminds (keyed, so a version already reminded sends nothing)."""
    now = as_utc(as_of)
    today = now.astimezone(LONDON).date()
    rows = session.exec(
        select(DiscussionInvitation, Case, Officer)
        .join(Case, col(Case.id) == DiscussionInvitation.case_id)
        .join(Officer, col(Officer.id) == Case.officer_id)
        .where(Case.state == CaseState.DISCUSSION_SCHEDULING,
               DiscussionInvitation.status == InvitationStatus.SENT,
               col(DiscussionInvitation.outcome).is_(None),
               DiscussionInvitation.starts_at > now,
               DiscussionInvitation.starts_at <= now + timedelta(days=10))
    ).all()
    return [(invitation, case, officer) for invitation, case, officer in rows
            if today >= working_day_before(as_utc(invitation.starts_at).astimezone(LONDON).date())]


def send_reminder(session: Session, invitation: DiscussionInvitation, case: Case,
                  officer: Officer) -> int:
    """Remind the officer and the reviewer of this version of the meeting; how many were queued
    (none if this version was reminded before)."""
    sent = 0
    for email, name, link in ((officer.email, f"{officer.rank.value.replace('_', ' ').title()} "
                               f"{officer.name}", ""),
                              (case.reviewer_email, case.reviewer_name,
                               case_link(case.id or 0))):
        sent += enqueue(
            session, key=f"{case.id}:discussion_reminder:{email}:m{invitation.meeting}"
                         f"s{invitation.sequence}",
            kind="discussion_reminder", recipient=email, case_id=case.id,
            context={"case": case, "officer": officer, "recipient_name": name,
                     "case_link": link, **_meeting_context(case, invitation)})
    return sent


def send_reminders(as_of: datetime) -> tuple[int, int]:
    """Every reminder due as of `as_of`, in one transaction. Returns (read, sent)."""
    with session_scope() as session:
        rows = reminders_due(session, as_of)
        return len(rows), sum(send_reminder(session, *row) for row in rows)
