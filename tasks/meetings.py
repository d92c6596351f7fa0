"""The rules of a multi-agency reflective practice meeting (seed 003), Prefect-free.

Each rule takes a `Session` and `now` from its caller, checks the meeting's state before it acts
(so a flow replay repeats nothing), records an event, and queues its emails in the same
transaction through the outbox, keyed per meeting, kind, recipient and occurrence. Emails say only
"a meeting you are invited to" and link to the meeting's page: the child's and family's details
stay in this database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlmodel import Session, col, select

from infra.settings import get_settings
from models.meetings import (
    MEETING_ENDINGS,
    AttendanceStatus,
    CrcChoice,
    CrcSummary,
    LearningLog,
    Meeting,
    MeetingAction,
    MeetingActionStatus,
    MeetingEvent,
    MeetingInvitee,
    MeetingState,
    TimelineEntry,
)
from tasks.identifiers import mentions_any, name_parts
from tasks.meeting_links import invitee_link, invitee_token, meeting_page_link
from tasks.outbox import RenderedEmail, email_environment, enqueue_rendered

M = MeetingState

# The seed's reflective questions, offered as prompts on the learning log's page.
REFLECTIVE_PROMPTS = (
    "What time scale is appropriate?",
    "What might be/have been going on at each point of the child's journey?",
    "What did we do about any issues?",
    "Why did we do what we did?",
    "Was there anything that acted as a barrier?",
    "What were the outcomes for the child?",
    "Could we have done things differently?",
)


class MeetingRefused(ValueError):
    """Bad input or a step out of order: nothing was changed; the message says why."""


class NameInSummary(MeetingRefused):
    """The CRC summary still holds a name recorded in the meeting."""

    def __init__(self, found: list[tuple[str, str]]) -> None:
        self.found = found
        which = "; ".join(f"{kind} name {name!r}" for kind, name in found)
        super().__init__(f"The summary for the Case Review Committee must hold no names: it "
                         f"still contains {which}. Remove them (use roles and the age instead).")


@dataclass(frozen=True)
class Invitation:
    name: str
    email: str
    agency: str
    role: str
    manager_email: str = ""


def _event(session: Session, meeting: Meeting, actor: str, action: str, now: datetime, *,
           to_state: MeetingState | None = None, detail: str = "") -> None:
    assert meeting.id is not None
    from_state = meeting.state.value
    if to_state is not None:
        meeting.state = to_state
        if to_state in MEETING_ENDINGS:
            meeting.closed_at = now
    meeting.updated_at = now
    session.add(meeting)
    session.add(MeetingEvent(meeting_id=meeting.id, at=now, actor=actor, action=action,
                             from_state=from_state,
                             to_state=to_state.value if to_state else None, detail=detail[:1000]))


def _require(meeting: Meeting, *states: MeetingState) -> None:
    if meeting.state not in states:
        allowed = ", ".join(s.value for s in states)
        raise MeetingRefused(f"Meeting {meeting.reference} is {meeting.state.value}; this step "
                             f"needs it to be {allowed}.")


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise MeetingRefused(f"{what} is required.")
    return value


def _email(value: str, what: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise MeetingRefused(f"{what} must be an email address.")
    return value


def notify(session: Session, meeting: Meeting, *, key: str, recipient: str, title: str,
           message: str, link: str) -> bool:
    """Queue one meeting email. `title` and `message` are fixed wording, never the record's."""
    assert meeting.id is not None
    settings = get_settings()
    context = {"letterhead": settings.rpm_letterhead, "force_name": settings.rpm_letterhead,
               "partnership_name": settings.rpm_partnership_name,
               "business_unit_address": settings.rpm_business_unit_address,
               "title": title, "message": message, "link": link}
    env = email_environment()
    text_template = env.get_template("rpm_notice.txt")
    subject = " ".join("".join(
        text_template.blocks["subject"](text_template.new_context(context))).split())
    text = re.sub(r"\n{3,}", "\n\n", text_template.render(context)).strip() + "\n"
    html = env.get_template("rpm_notice.html").render({**context, "subject": subject})
    return enqueue_rendered(session, key=f"rpm:{meeting.id}:{key}", kind="rpm_notice",
                            recipient=recipient,
                            email=RenderedEmail(subject=subject, text=text, html=html))


def get_meeting(session: Session, meeting_id: int) -> Meeting:
    meeting = session.get(Meeting, meeting_id)
    if meeting is None:
        raise MeetingRefused(f"No meeting {meeting_id}.")
    return meeting


def invitees(session: Session, meeting_id: int) -> list[MeetingInvitee]:
    return list(session.exec(select(MeetingInvitee).where(
        MeetingInvitee.meeting_id == meeting_id).order_by(col(MeetingInvitee.id))).all())


def request_meeting(session: Session, now: datetime, *, child_name: str, child_date_of_birth: date,
                    family_names: str, requested_by_name: str, requested_by_agency: str,
                    requested_by_email: str, facilitator_name: str, facilitator_email: str,
                    purpose: str, meeting_on: date | None = None, place: str = "") -> Meeting:
    """An agency or professional identifies a case for reflective discussion."""
    if child_date_of_birth > now.date():
        raise MeetingRefused("The child's date of birth cannot be in the future.")
    meeting = Meeting(
        child_name=_text(child_name, "The child's name"), child_date_of_birth=child_date_of_birth,
        family_names=family_names.strip(),
        requested_by_name=_text(requested_by_name, "The requester's name"),
        requested_by_agency=_text(requested_by_agency, "The requesting agency"),
        requested_by_email=_email(requested_by_email, "The requester's email"),
        facilitator_name=_text(facilitator_name, "The facilitator's name"),
        facilitator_email=_email(facilitator_email, "The facilitator's email"),
        purpose=_text(purpose, "The purpose of the meeting"), meeting_on=meeting_on,
        place=place.strip(), created_at=now, updated_at=now)
    session.add(meeting)
    session.flush()
    assert meeting.id is not None
    meeting.reference = f"RPM-{meeting.id:06d}"
    _event(session, meeting, requested_by_email, "meeting_requested", now,
           detail=f"requested by {meeting.requested_by_agency}")
    return meeting


def add_invitee(session: Session, meeting: Meeting, invitation: Invitation, now: datetime, *,
                actor: str, in_place_of: MeetingInvitee | None = None) -> MeetingInvitee:
    """An invited professional (statutory or voluntary agency) with their role and manager."""
    if meeting.state in MEETING_ENDINGS:
        raise MeetingRefused(f"Meeting {meeting.reference} has ended.")
    assert meeting.id is not None
    email = _email(invitation.email, "The invitee's email")
    if any(i.email == email for i in invitees(session, meeting.id)):
        raise MeetingRefused(f"{email} is already invited to this meeting.")
    invitee = MeetingInvitee(
        meeting_id=meeting.id, name=_text(invitation.name, "The invitee's name"), email=email,
        agency=_text(invitation.agency, "The invitee's agency"),
        role=_text(invitation.role, "The invitee's role"),
        manager_email=(_email(invitation.manager_email, "The manager's email")
                       if invitation.manager_email.strip() else ""),
        in_place_of_id=in_place_of.id if in_place_of else None)
    session.add(invitee)
    session.flush()
    _event(session, meeting, actor, "invitee_added", now, detail=f"invitee {invitee.id}")
    if meeting.state != M.REQUESTED:  # invitations already went: this one goes now
        _invite(session, meeting, invitee, now)
    return invitee


def request_with_invitees(session: Session, now: datetime, *, invitations: list[Invitation],
                          child_name: str, child_date_of_birth: date, family_names: str,
                          requested_by_name: str, requested_by_agency: str,
                          requested_by_email: str, facilitator_name: str, facilitator_email: str,
                          purpose: str, meeting_on: date | None = None,
                          place: str = "") -> Meeting:
    """The request page's one step: the meeting and its invitees (with their agency, role and
    manager) recorded together, or nothing at all (the caller's transaction rolls back on the
    first refusal). Invitations go when the meeting's run starts."""
    if not invitations:
        raise MeetingRefused("Invite at least one professional (name, email, agency and role).")
    if meeting_on is not None and meeting_on < now.date():
        raise MeetingRefused("The meeting cannot be planned for a date in the past.")
    meeting = request_meeting(
        session, now, child_name=child_name, child_date_of_birth=child_date_of_birth,
        family_names=family_names, requested_by_name=requested_by_name,
        requested_by_agency=requested_by_agency, requested_by_email=requested_by_email,
        facilitator_name=facilitator_name, facilitator_email=facilitator_email,
        purpose=purpose, meeting_on=meeting_on, place=place)
    for invitation in invitations:
        add_invitee(session, meeting, invitation, now, actor=meeting.facilitator_email)
    return meeting


def link_for(meeting: Meeting, invitee: MeetingInvitee) -> str:
    assert meeting.id is not None and invitee.id is not None
    expires = datetime.combine(meeting.created_at.date(), datetime.min.time(),
                               tzinfo=meeting.created_at.tzinfo) + timedelta(
        days=get_settings().rpm_link_days)
    return invitee_link(invitee_token(meeting.id, invitee.id, expires))


def _invite(session: Session, meeting: Meeting, invitee: MeetingInvitee, now: datetime) -> None:
    notify(session, meeting, key=f"invitation:{invitee.id}", recipient=invitee.email,
           title="A meeting you are invited to",
           message="You are invited to a multi-agency reflective practice meeting. It is focused "
                   "on learning, not blame. Please confirm that you will attend the whole "
                   "meeting, or name a colleague who can attend in your place.",
           link=link_for(meeting, invitee))
    if invitee.manager_email:
        notify(session, meeting, key=f"manager-invitation:{invitee.id}",
               recipient=invitee.manager_email, title="A meeting your colleague is invited to",
               message="A professional you manage is invited to a multi-agency reflective "
                       "practice meeting. Please support their attendance for the whole meeting.",
               link=link_for(meeting, invitee))


def send_invitations(session: Session, meeting: Meeting, now: datetime) -> bool:
    """Purpose documented against the child's record; invitations circulated. False if done."""
    if meeting.state != M.REQUESTED:
        return False
    assert meeting.id is not None
    people = invitees(session, meeting.id)
    if not people:
        raise MeetingRefused("Invite at least one professional before sending invitations.")
    for invitee in people:
        _invite(session, meeting, invitee, now)
    _event(session, meeting, "system", "invitations_sent", now, to_state=M.INVITATIONS_SENT,
           detail=f"{len(people)} invitees")
    return True


def _invitee(session: Session, meeting_id: int, invitee_id: int) -> MeetingInvitee:
    invitee = session.get(MeetingInvitee, invitee_id)
    if invitee is None or invitee.meeting_id != meeting_id:
        raise MeetingRefused("This invitation is not for this meeting.")
    return invitee


def confirm_attendance(session: Session, meeting_id: int, invitee_id: int, now: datetime, *,
                       whole_meeting: bool) -> MeetingInvitee:
    """Ground rule 2: attendance is for the whole meeting, so that is what an invitee confirms."""
    meeting = get_meeting(session, meeting_id)
    _require(meeting, M.INVITATIONS_SENT)
    if not whole_meeting:
        raise MeetingRefused("Attendance is for the whole meeting. If you cannot stay for all "
                             "of it, decline and name a colleague who can.")
    invitee = _invitee(session, meeting_id, invitee_id)
    if invitee.status == AttendanceStatus.CONFIRMED:
        return invitee
    invitee.status, invitee.replied_at = AttendanceStatus.CONFIRMED, now
    session.add(invitee)
    _event(session, meeting, invitee.email, "attendance_confirmed", now,
           detail=f"invitee {invitee.id}")
    return invitee


def decline_attendance(session: Session, meeting_id: int, invitee_id: int, now: datetime, *,
                       colleague: Invitation) -> MeetingInvitee:
    """A decline names a colleague, who is invited in the invitee's place. Returns the colleague."""
    meeting = get_meeting(session, meeting_id)
    _require(meeting, M.INVITATIONS_SENT)
    invitee = _invitee(session, meeting_id, invitee_id)
    if invitee.status == AttendanceStatus.DECLINED:
        raise MeetingRefused("You have already declined and named a colleague.")
    substitute = add_invitee(session, meeting, colleague, now, actor=invitee.email,
                             in_place_of=invitee)
    invitee.status, invitee.replied_at = AttendanceStatus.DECLINED, now
    session.add(invitee)
    _event(session, meeting, invitee.email, "attendance_declined", now,
           detail=f"invitee {invitee.id}; colleague {substitute.id} invited")
    return substitute


def contribute(session: Session, meeting_id: int, invitee_id: int, text: str,
               now: datetime) -> None:
    """An invitee's contribution to the record, through their link (before the record closes)."""
    meeting = get_meeting(session, meeting_id)
    _require(meeting, M.INVITATIONS_SENT, M.MEETING_HELD)
    invitee = _invitee(session, meeting_id, invitee_id)
    invitee.contribution = _text(text, "Your contribution")
    session.add(invitee)
    _event(session, meeting, invitee.email, "contribution_saved", now,
           detail=f"invitee {invitee.id}")


def awaiting_reply(session: Session, meeting_id: int) -> list[MeetingInvitee]:
    return [i for i in invitees(session, meeting_id) if i.status == AttendanceStatus.INVITED]


def hold_meeting(session: Session, meeting: Meeting, held_on: date, now: datetime, *,
                 actor: str) -> bool:
    """The facilitator records that the meeting was held. False if it already was."""
    if meeting.state == M.MEETING_HELD:
        return False
    _require(meeting, M.INVITATIONS_SENT)
    if held_on > now.date():
        raise MeetingRefused("A meeting cannot be held on a future date.")
    assert meeting.id is not None
    if not any(i.status == AttendanceStatus.CONFIRMED for i in invitees(session, meeting.id)):
        raise MeetingRefused("No invitee has confirmed attendance.")
    meeting.held_on = held_on
    _event(session, meeting, actor, "meeting_held", now, to_state=M.MEETING_HELD)
    return True


def learning_log(session: Session, meeting: Meeting) -> LearningLog:
    assert meeting.id is not None
    log = session.exec(select(LearningLog).where(LearningLog.meeting_id == meeting.id)).first()
    if log is None:
        log = LearningLog(meeting_id=meeting.id)
        session.add(log)
        session.flush()
    return log


LOG_FIELDS = ("case_name", "issues_and_timescales", "learning_points", "cross_agency_learning",
              "single_agency_learning", "conclusions")


def save_log(session: Session, meeting: Meeting, now: datetime, *, actor: str,
             **fields: str) -> LearningLog:
    """Save Appendix 2's headings as written so far (the chair signs it off separately)."""
    _require(meeting, M.MEETING_HELD)
    unknown = set(fields) - set(LOG_FIELDS)
    if unknown:
        raise MeetingRefused(f"Unknown learning log fields: {sorted(unknown)}")
    log = learning_log(session, meeting)
    for name, value in fields.items():
        setattr(log, name, value.strip())
    session.add(log)
    _event(session, meeting, actor, "learning_log_saved", now)
    return log


def add_timeline_entry(session: Session, meeting: Meeting, on: date, what_happened: str,
                       learning_point: str, now: datetime, *, actor: str) -> TimelineEntry:
    _require(meeting, M.MEETING_HELD)
    assert meeting.id is not None
    if on > now.date():
        raise MeetingRefused("A point of the child's journey cannot be in the future.")
    entry = TimelineEntry(meeting_id=meeting.id, on=on,
                          what_happened=_text(what_happened, "What happened"),
                          learning_point=learning_point.strip())
    session.add(entry)
    _event(session, meeting, actor, "timeline_entry_added", now)
    return entry


def add_action(session: Session, meeting: Meeting, description: str, owner: str, due_on: date,
               now: datetime, *, actor: str, owner_email: str = "") -> MeetingAction:
    _require(meeting, M.MEETING_HELD, M.RECORD_COMPLETED, M.CRC_CONSIDERED)
    assert meeting.id is not None
    if due_on < now.date():
        raise MeetingRefused("An action cannot be due in the past.")
    action = MeetingAction(meeting_id=meeting.id, description=_text(description, "The action"),
                           owner=_text(owner, "The action's owner"), due_on=due_on,
                           owner_email=(_email(owner_email, "The owner's email")
                                        if owner_email.strip() else ""))
    session.add(action)
    _event(session, meeting, actor, "action_added", now)
    return action


def complete_action(session: Session, meeting: Meeting, action_id: int, now: datetime, *,
                    actor: str) -> bool:
    """The facilitator marks an action done: it is tracked to closure, and no reminder follows.
    False if it was already done."""
    assert meeting.id is not None
    action = session.get(MeetingAction, action_id)
    if action is None or action.meeting_id != meeting.id:
        raise MeetingRefused("Choose an action of this meeting.")
    if meeting.state == M.CANCELLED:
        raise MeetingRefused(f"Meeting {meeting.reference} is cancelled.")
    if action.status == MeetingActionStatus.DONE:
        return False
    action.status, action.done_on = MeetingActionStatus.DONE, now.date()
    session.add(action)
    _event(session, meeting, actor, "action_done", now, detail=f"action {action.id}")
    return True


def timeline(session: Session, meeting_id: int) -> list[TimelineEntry]:
    return list(session.exec(select(TimelineEntry).where(TimelineEntry.meeting_id == meeting_id)
                             .order_by(col(TimelineEntry.on), col(TimelineEntry.id))).all())


def sign_off_record(session: Session, meeting: Meeting, chair: str, signed_on: date,
                    now: datetime) -> bool:
    """The chair signs the learning log: the record of discussion is complete."""
    if meeting.state == M.RECORD_COMPLETED:
        return False
    _require(meeting, M.MEETING_HELD)
    assert meeting.id is not None
    log = learning_log(session, meeting)
    missing = [name for name in ("issues_and_timescales", "learning_points", "conclusions")
               if not getattr(log, name).strip()]
    if not timeline(session, meeting.id):
        missing.append("the child's journey (timeline)")
    if missing:
        raise MeetingRefused(f"The learning log is not complete: {', '.join(missing)}.")
    if meeting.held_on and signed_on < meeting.held_on or signed_on > now.date():
        raise MeetingRefused("The chair signs on or after the meeting, and not in the future.")
    log.signed_by_chair, log.signed_on = _text(chair, "The chair's name"), signed_on
    session.add(log)
    _event(session, meeting, chair, "record_signed", now, to_state=M.RECORD_COMPLETED)
    return True


def distribute_record(session: Session, meeting: Meeting, now: datetime) -> bool:
    """To the attendees, their service managers and the individual professionals."""
    if meeting.state != M.RECORD_COMPLETED:
        return False
    assert meeting.id is not None
    for invitee in invitees(session, meeting.id):
        if invitee.status == AttendanceStatus.DECLINED:
            continue
        link = link_for(meeting, invitee)
        notify(session, meeting, key=f"record:{invitee.id}", recipient=invitee.email,
               title="The record of a meeting you were invited to",
               message="The record of discussion of a reflective practice meeting you were "
                       "invited to is ready to read.", link=link)
        if invitee.manager_email:
            notify(session, meeting, key=f"manager-record:{invitee.id}",
                   recipient=invitee.manager_email,
                   title="The record of a meeting your colleague was invited to",
                   message="The learning of a reflective practice meeting a professional you "
                           "manage was invited to is ready to read.", link=link)
    _event(session, meeting, "system", "record_distributed", now, to_state=M.RECORD_DISTRIBUTED)
    return True


def names_recorded(session: Session, meeting: Meeting) -> list[tuple[str, str]]:
    """Every name the meeting holds, as (whose, name): the child, family and professionals."""
    assert meeting.id is not None
    names: list[tuple[str, str]] = [("the child's", meeting.child_name)]
    names += [("a family member's", n) for n in re.split(r"[,\n;]", meeting.family_names)]
    names += [("a professional's", n) for n in (meeting.requested_by_name,
                                                 meeting.facilitator_name)]
    names += [("a professional's", i.name) for i in invitees(session, meeting.id)]
    log = learning_log(session, meeting)
    if log.signed_by_chair:
        names.append(("a professional's", log.signed_by_chair))
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for kind, name in names:
        name = " ".join(name.split())
        if name and name.lower() not in seen:
            seen.add(name.lower())
            found.append((kind, name))
    return found


def names_in(text: str, names: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The recorded names the text holds: the whole name, or any part of it of 3+ letters."""
    hits: list[tuple[str, str]] = []
    for kind, name in names:
        if mentions_any(text, name_parts(name, min_length=3)):
            hits.append((kind, name))
    return hits


def age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def save_crc_summary(session: Session, meeting: Meeting, *, chair: str, learning_to_share: str,
                     now: datetime) -> CrcSummary:
    """Appendix 3: the child's age, the meeting date, the chair (role), the learning. No name.

    Refuses, naming whose name it found, any text that still holds a name recorded in the meeting.
    """
    _require(meeting, M.RECORD_DISTRIBUTED)
    assert meeting.id is not None and meeting.held_on is not None
    chair = _text(chair, "The chair of the meeting (their role and agency)")
    learning = _text(learning_to_share, "The learning to be shared")
    found = names_in(f"{chair}\n{learning}", names_recorded(session, meeting))
    if found:
        raise NameInSummary(found)
    summary = session.exec(select(CrcSummary).where(CrcSummary.meeting_id == meeting.id)).first()
    summary = summary or CrcSummary(meeting_id=meeting.id, child_age=0, meeting_on=meeting.held_on,
                                    chair="", learning_to_share="")
    summary.child_age = age_on(meeting.child_date_of_birth, meeting.held_on)
    summary.meeting_on, summary.chair, summary.learning_to_share = meeting.held_on, chair, learning
    summary.saved_at = now
    session.add(summary)
    _event(session, meeting, "system", "crc_summary_saved", now)
    return summary


def crc_summary(session: Session, meeting_id: int) -> CrcSummary | None:
    return session.exec(select(CrcSummary).where(CrcSummary.meeting_id == meeting_id)).first()


def send_to_business_unit(session: Session, meeting: Meeting, now: datetime) -> bool:
    """The record and learning points go to the business unit, with the summary for the CRC."""
    if meeting.state != M.RECORD_DISTRIBUTED:
        return False
    assert meeting.id is not None
    if crc_summary(session, meeting.id) is None:
        raise MeetingRefused("Save the summary for the Case Review Committee first.")
    settings = get_settings()
    notify(session, meeting, key="business-unit", recipient=settings.rpm_business_unit_email,
           title="The record of a reflective practice meeting",
           message="The record of discussion and learning points of a reflective practice "
                   "meeting, with its summary for the Case Review Committee, are ready.",
           link=meeting_page_link(meeting.id))
    notify(session, meeting, key="crc-chair", recipient=settings.rpm_crc_chair_email,
           title="Learning for the Case Review Committee to consider",
           message="A reflective practice meeting's summary of learning points is ready for the "
                   "Case Review Committee to consider.", link=meeting_page_link(meeting.id))
    _event(session, meeting, "system", "sent_to_business_unit", now,
           to_state=M.SENT_TO_BUSINESS_UNIT)
    return True


def record_crc_decision(session: Session, meeting: Meeting, choice: CrcChoice, plan: str,
                        now: datetime, *, decided_by: str) -> bool:
    """The CRC considers the organisational learning points and plans action (or escalates)."""
    if meeting.state in (M.CRC_CONSIDERED, M.ESCALATED) and meeting.crc_choice:
        return False
    _require(meeting, M.SENT_TO_BUSINESS_UNIT)
    if choice == CrcChoice.PLAN_ACTION and not plan.strip():
        raise MeetingRefused("Planning action needs the plan.")
    meeting.crc_choice, meeting.crc_plan = choice.name.lower(), plan.strip()
    meeting.crc_decided_by, meeting.crc_decided_on = _text(decided_by, "Who decided"), now.date()
    if choice == CrcChoice.ESCALATE:
        escalate(session, meeting, plan or "The Case Review Committee found the case meets the "
                 "criteria for a child safeguarding practice review.", now, actor=decided_by)
        return True
    _event(session, meeting, decided_by, "crc_considered", now, to_state=M.CRC_CONSIDERED,
           detail=choice.name.lower())
    return True


def disseminate_learning(session: Session, meeting: Meeting, how: str, now: datetime, *,
                         actor: str) -> bool:
    """Frontline practitioners informed (briefings, workshops): recorded, then the meeting closes."""
    if meeting.state in (M.LEARNING_DISSEMINATED, M.CLOSED):
        return False
    _require(meeting, M.CRC_CONSIDERED)
    meeting.dissemination = _text(how, "How the learning was shared")
    _event(session, meeting, actor, "learning_disseminated", now,
           to_state=M.LEARNING_DISSEMINATED)
    return True


def close_meeting(session: Session, meeting: Meeting, now: datetime) -> bool:
    if meeting.state == M.CLOSED:
        return False
    _require(meeting, M.LEARNING_DISSEMINATED)
    _event(session, meeting, "system", "meeting_closed", now, to_state=M.CLOSED)
    return True


def cancel_meeting(session: Session, meeting: Meeting, reason: str, now: datetime, *,
                   actor: str) -> bool:
    """Side exit: cancelled with a reason; the invitees still waiting are told."""
    if meeting.state == M.CANCELLED:
        return False
    if meeting.state in MEETING_ENDINGS or meeting.state in (
            M.SENT_TO_BUSINESS_UNIT, M.CRC_CONSIDERED, M.LEARNING_DISSEMINATED):
        raise MeetingRefused(f"Meeting {meeting.reference} is {meeting.state.value}: it can no "
                             "longer be cancelled.")
    meeting.ending_reason = _text(reason, "The reason for cancelling")
    assert meeting.id is not None
    if meeting.state != M.REQUESTED:
        for invitee in invitees(session, meeting.id):
            notify(session, meeting, key=f"cancelled:{invitee.id}", recipient=invitee.email,
                   title="A meeting you were invited to is cancelled",
                   message="A reflective practice meeting you were invited to has been "
                           "cancelled.", link=link_for(meeting, invitee))
    _event(session, meeting, actor, "meeting_cancelled", now, to_state=M.CANCELLED)
    return True


def escalate(session: Session, meeting: Meeting, reason: str, now: datetime, *,
             actor: str) -> bool:
    """Side exit: the case meets the criteria for a formal child safeguarding practice review."""
    if meeting.state == M.ESCALATED:
        return False
    if meeting.state in MEETING_ENDINGS:
        raise MeetingRefused(f"Meeting {meeting.reference} has ended.")
    meeting.ending_reason = _text(reason, "Why the case meets the criteria")
    assert meeting.id is not None
    notify(session, meeting, key="escalated", recipient=get_settings().rpm_business_unit_email,
           title="A meeting referred for a child safeguarding practice review",
           message=f"A reflective practice meeting has found that its case meets the criteria "
                   f"for a formal child safeguarding practice review. "
                   f"{get_settings().rpm_partnership_name} should consider it.",
           link=meeting_page_link(meeting.id))
    _event(session, meeting, actor, "escalated_to_cspr", now, to_state=M.ESCALATED)
    return True


def overdue_reminders(session: Session, as_of: datetime) -> int:
    """The policy timers: invitation replies, the record's completion, the CRC's consideration.

    One reminder per meeting, timer and day count (outbox keys), so the sweep is idempotent.
    """
    settings = get_settings()
    sent = 0
    open_meetings = session.exec(select(Meeting).where(
        col(Meeting.state).not_in([s.value for s in MEETING_ENDINGS]))).all()
    for meeting in open_meetings:
        assert meeting.id is not None
        since = _entered(session, meeting)
        days = (as_of - since).days
        if meeting.state == M.INVITATIONS_SENT and days >= settings.rpm_invitation_reply_days:
            for invitee in awaiting_reply(session, meeting.id):
                sent += notify(session, meeting, key=f"reply-reminder:{invitee.id}",
                               recipient=invitee.email,
                               title="Reminder: a meeting you are invited to",
                               message="Please confirm or decline your invitation to a "
                                       "reflective practice meeting.",
                               link=link_for(meeting, invitee))
        elif meeting.state == M.MEETING_HELD and days >= settings.rpm_record_completion_days:
            sent += notify(session, meeting, key="record-reminder",
                           recipient=meeting.facilitator_email,
                           title="Reminder: the record of a meeting you facilitated",
                           message="The learning log of a reflective practice meeting you "
                                   "facilitated is not yet signed off by the chair.",
                           link=meeting_page_link(meeting.id))
        elif (meeting.state == M.SENT_TO_BUSINESS_UNIT
              and days >= settings.rpm_crc_consideration_days):
            sent += notify(session, meeting, key="crc-reminder",
                           recipient=settings.rpm_crc_chair_email,
                           title="Reminder: learning for the Case Review Committee",
                           message="A reflective practice meeting's learning points are waiting "
                                   "for the Case Review Committee.",
                           link=meeting_page_link(meeting.id))
    return sent


def action_reminders(session: Session, as_of: datetime) -> int:
    """An open action past its due date: its owner (else the facilitator) is reminded once per
    due date (a new date earns one more). The email names neither the action nor the child."""
    sent = 0
    rows = session.exec(select(MeetingAction, Meeting).join(
        Meeting, col(Meeting.id) == col(MeetingAction.meeting_id)).where(
        MeetingAction.status == MeetingActionStatus.OPEN,
        col(MeetingAction.due_on) < as_of.date(), Meeting.state != M.CANCELLED)).all()
    for action, meeting in rows:
        assert meeting.id is not None
        sent += notify(session, meeting, key=f"action-overdue:{action.id}:{action.due_on}",
                       recipient=action.owner_email or meeting.facilitator_email,
                       title="Reminder: an action from a reflective practice meeting",
                       message="An action you own from a multi-agency reflective practice "
                               "meeting is past its due date. When it is done, tell the "
                               "meeting's facilitator, who records it as done.",
                       link=meeting_page_link(meeting.id))
    return sent


def annual_review_reminders(session: Session, as_of: datetime) -> int:
    """The guidance's annual review: on each anniversary of a meeting held (and not cancelled),
    the business unit is reminded once for that year."""
    sent = 0
    held = session.exec(select(Meeting).where(
        col(Meeting.held_on).is_not(None), Meeting.state != M.CANCELLED)).all()
    for meeting in held:
        assert meeting.id is not None and meeting.held_on is not None
        years = age_on(meeting.held_on, as_of.date())
        if years < 1:
            continue
        sent += notify(session, meeting, key=f"annual-review:{years}",
                       recipient=get_settings().rpm_business_unit_email,
                       title="The annual review of a reflective practice meeting",
                       message=f"A reflective practice meeting was held {years} year"
                               f"{'s' if years > 1 else ''} ago today. Please review whether "
                               "its learning and actions have made a difference.",
                       link=meeting_page_link(meeting.id))
    return sent


def _entered(session: Session, meeting: Meeting) -> datetime:
    """When the meeting entered its current state (its last transition event)."""
    at = session.exec(select(MeetingEvent.at).where(
        MeetingEvent.meeting_id == meeting.id, MeetingEvent.to_state == meeting.state.value)
        .order_by(col(MeetingEvent.id).desc())).first()
    return at or meeting.created_at
