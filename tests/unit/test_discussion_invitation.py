"""The discussion invitation's rules against the case DB: a past date is refused, a date beyond
the force's target is accepted and flagged, a move is the next SEQUENCE of the same UID, a
cancellation is METHOD:CANCEL, non-attendance is recorded against the invitation, and the
reminder goes once per version on the working day before."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from icalendar import Calendar
from sqlmodel import select

from infra.db import session_scope
from models import AuditEvent, Case, DecisionSubmission, DiscussionInvitation, Outbox
from models.enums import CaseState, InvitationStatus, MeetingOutcome
from models.forms import DiscussionOutcome, FactFindingChoice, FactFindingDecision
from tasks.briefing import describe
from tasks.calendar import LONDON, england_and_wales
from tasks.casework import advance, apply_answer, close_externally, record_account, wait_for
from tasks.discussion_invitation import (
    InvitationRejected,
    check_proposal,
    london_start,
    meeting_text,
    send_reminders,
    working_day_before,
)
from tasks.intake import create_case
from tasks.records import officer_of
from tests.support.cases import PSD, REVIEWER, sample_referral, through_gateway

S = CaseState
INVITE = "Invite the officer: send the date, time and place below"
MOVE = "Move the meeting: send a new invitation with the date, time and place below"
CANCEL = "Cancel the meeting: withdraw the invitation"


@pytest.fixture(autouse=True)
def flow_rules_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are of the flow's own rules (it verifies, not trusts), so the gateway's
    pre-check of the same rules is off here; test_the_gateway_refuses_... tests it."""
    monkeypatch.setattr("tasks.decisions.invitation_problems", lambda *args, **kwargs: [])


def working_days_ahead(n: int) -> date:
    return england_and_wales().add_working_days(datetime.now(LONDON).date(), n)


@pytest.fixture
def case_id() -> int:
    """A stored case at the discussion step: account given, no fact-finding."""
    with session_scope() as session:
        created, _ = create_case(session, sample_referral(), actor=PSD)
        case_id = created.id
    assert case_id is not None
    advance(case_id)
    record_account(case_id, 1, "My account of the stop, in enough words.")
    answer(case_id, FactFindingDecision, choice=FactFindingChoice.NO_FACT_FINDING.value)
    assert case_row(case_id).state is S.DISCUSSION_SCHEDULING
    return case_id


def case_row(case_id: int) -> Case:
    with session_scope() as session:
        row = session.get(Case, case_id)
        assert row is not None
        return row


def answer(case_id: int, form: type = DiscussionOutcome, now: datetime | None = None,
           **values: Any) -> CaseState:
    """What the Resume form sends, applied as the flow's record-decision task does."""
    wait = advance(case_id, now)[1]
    assert wait is not None
    return apply_answer(case_id, wait.key, through_gateway(case_id, wait, values, now=now), now)


def invite(case_id: int, day: date, hhmm: str = "10:00", choice: str = INVITE,
           **values: Any) -> CaseState:
    return answer(case_id, choice=choice, meeting_date=day.isoformat(), meeting_time=hhmm,
                  place=values.pop("place", "Interview room 2, Central police station"), **values)


def versions(case_id: int) -> list[DiscussionInvitation]:
    with session_scope() as session:
        return list(session.exec(select(DiscussionInvitation)
                                 .where(DiscussionInvitation.case_id == case_id)
                                 .order_by(DiscussionInvitation.id)))  # type: ignore[arg-type]


def mail(case_id: int, kind: str) -> list[Outbox]:
    with session_scope() as session:
        return list(session.exec(select(Outbox).where(Outbox.case_id == case_id,
                                                      Outbox.kind == kind)
                                 .order_by(Outbox.id)))  # type: ignore[arg-type]


def audit_details(case_id: int, action: str) -> list[str]:
    with session_scope() as session:
        return [e.detail for e in session.exec(
            select(AuditEvent).where(AuditEvent.case_id == case_id,
                                     AuditEvent.action.startswith(action))  # type: ignore[attr-defined]
            .order_by(AuditEvent.id))]  # type: ignore[arg-type]


def officer_email(case_id: int) -> str:
    with session_scope() as session:
        return officer_of(session, case_row(case_id)).email


def event_of(row: Outbox) -> tuple[str, Any]:
    calendar = Calendar.from_ical(row.attachment_body or "")
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return str(calendar["METHOD"]), events[0]


def test_a_meeting_in_the_past_is_refused_with_its_reason_and_nothing_is_sent(
        case_id: int) -> None:
    yesterday = datetime.now(LONDON).date() - timedelta(days=1)
    assert invite(case_id, yesterday) is S.DISCUSSION_SCHEDULING
    assert versions(case_id) == [] and mail(case_id, "discussion_invitation") == []
    reason = audit_details(case_id, "decision_rejected")[-1]
    assert f"The proposed meeting, {meeting_text(london_start(yesterday, '10:00'))}, is in the " \
           "past" in reason
    assert case_row(case_id).rejected_inputs == 1
    assert "is in the past" in describe(case_id, wait_for(case_row(case_id)))  # type: ignore[arg-type]


def test_an_earlier_time_today_is_past_too() -> None:
    now = datetime(2026, 12, 10, 11, 0, tzinfo=LONDON)
    with pytest.raises(InvitationRejected, match="Thursday 10 December 2026, 10:00, is in the past"):
        check_proposal(london_start(date(2026, 12, 10), "10:00"), now, None)
    assert check_proposal(london_start(date(2026, 12, 10), "11:30"), now, None) == ""


def test_a_missing_date_time_or_place_is_refused_naming_each(case_id: int) -> None:
    assert answer(case_id, choice=INVITE, meeting_format="Video call") is S.DISCUSSION_SCHEDULING
    assert audit_details(case_id, "decision_rejected")[-1] == (
        "To invite the officer or move the meeting, enter the date of the meeting, the start "
        "time and the phone number or video link of the call")
    assert versions(case_id) == []


def test_a_time_the_clocks_skip_is_refused() -> None:
    with pytest.raises(InvitationRejected, match="does not exist in the UK"):
        london_start(date(2027, 3, 28), "01:30")
    assert london_start(date(2026, 7, 1), "10:00") == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def test_the_invitation_is_stored_in_utc_and_emailed_with_a_calendar_request(case_id: int) -> None:
    day = working_days_ahead(3)
    assert invite(case_id, day, "14:30", duration_minutes=90) is S.DISCUSSION_SCHEDULING
    [invitation] = versions(case_id)
    starts = datetime.combine(day, time(14, 30), tzinfo=LONDON)
    assert invitation.starts_at.replace(tzinfo=UTC) == starts.astimezone(UTC)
    assert (invitation.sequence, invitation.meeting, invitation.beyond_target) == (0, 1, False)
    [row] = mail(case_id, "discussion_invitation")
    assert row.recipient == officer_email(case_id)
    assert row.attachment_filename == "invitation.ics"
    assert row.attachment_type == "text/calendar; method=REQUEST"
    method, event = event_of(row)
    assert method == "REQUEST"
    assert event.decoded("dtstart") == starts.astimezone(UTC)
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=90)
    assert int(event["SEQUENCE"]) == 0 and str(event["UID"]) == invitation.uid
    assert str(event["ORGANIZER"]) == f"mailto:{REVIEWER}"
    assert str(event["ATTENDEE"]) == f"mailto:{row.recipient}"
    assert "Interview room 2" in str(event["LOCATION"])
    assert meeting_text(starts) in row.subject and meeting_text(starts) in row.body_text
    # The step is asked again (a fresh key) and its description shows the invitation.
    wait = wait_for(case_row(case_id))
    assert wait is not None and wait.key.endswith("-1")
    text = describe(case_id, wait)
    assert "Invitation:" in text and "version 1" in text and "Warning" not in text
    # Inviting twice is refused: a change is a move.
    assert invite(case_id, day) is S.DISCUSSION_SCHEDULING
    assert "already invited" in audit_details(case_id, "decision_rejected")[-1]
    assert len(versions(case_id)) == 1


def test_a_date_beyond_the_target_is_accepted_and_flagged(case_id: int) -> None:
    day = working_days_ahead(40)
    assert invite(case_id, day) is S.DISCUSSION_SCHEDULING
    [invitation] = versions(case_id)
    assert invitation.beyond_target and invitation.target_due_at is not None
    assert "after the force's target" in audit_details(case_id, "discussion_invited")[-1]
    wait = wait_for(case_row(case_id))
    assert wait is not None
    assert "**Warning:** the meeting is after the force's target" in describe(case_id, wait)
    assert len(mail(case_id, "discussion_invitation")) == 1


def test_moving_the_meeting_sends_the_next_sequence_of_the_same_uid(case_id: int) -> None:
    first, second = working_days_ahead(3), working_days_ahead(4)
    invite(case_id, first)
    assert invite(case_id, second, "09:00", choice=MOVE) is S.DISCUSSION_SCHEDULING
    old, new = versions(case_id)
    assert (old.status, new.status) == (InvitationStatus.REPLACED, InvitationStatus.SENT)
    assert new.uid == old.uid and (old.sequence, new.sequence) == (0, 1)
    rows = mail(case_id, "discussion_invitation")
    assert len(rows) == 2
    (m1, e1), (m2, e2) = event_of(rows[0]), event_of(rows[1])
    assert m1 == m2 == "REQUEST" and str(e1["UID"]) == str(e2["UID"])
    assert int(e2["SEQUENCE"]) > int(e1["SEQUENCE"])
    assert f"replaces the one for {meeting_text(old.starts_at)}" in rows[1].body_text
    # Moving to the same date, time and place changes nothing.
    assert invite(case_id, second, "09:00", choice=MOVE) is S.DISCUSSION_SCHEDULING
    assert "already" in audit_details(case_id, "decision_rejected")[-1]
    assert len(versions(case_id)) == 2


def test_cancelling_sends_method_cancel_and_a_new_invitation_is_a_new_meeting(
        case_id: int) -> None:
    invite(case_id, working_days_ahead(3))
    assert answer(case_id, choice=CANCEL) is S.DISCUSSION_SCHEDULING
    [row] = mail(case_id, "discussion_cancelled")
    method, event = event_of(row)
    assert method == "CANCEL" and str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 1
    invite(case_id, working_days_ahead(5))
    first, cancelled, again = versions(case_id)
    assert cancelled.status is InvitationStatus.CANCELLED and cancelled.uid == first.uid
    assert again.meeting == 2 and again.sequence == 0 and again.uid != first.uid


def test_did_not_attend_is_recorded_against_the_invitation_the_officer_was_sent(
        case_id: int) -> None:
    # Not without an invitation: there is no meeting the officer could have missed.
    assert answer(case_id, choice="Officer did not attend",
                  held_on=date.today().isoformat()) is S.DISCUSSION_SCHEDULING
    assert "has not been sent an invitation" in audit_details(case_id, "decision_rejected")[-1]

    invite(case_id, working_days_ahead(2))
    invite(case_id, working_days_ahead(3), "11:00", choice=MOVE)
    assert answer(case_id, choice="Officer did not attend") is S.NON_ENGAGEMENT_REVIEW
    old, missed = versions(case_id)
    assert missed.outcome is MeetingOutcome.DID_NOT_ATTEND and old.outcome is None
    assert missed.outcome_recorded_by == REVIEWER
    [detail] = audit_details(case_id, "discussion_outcome_recorded")
    assert "did not attend" in detail and meeting_text(missed.starts_at) in detail
    assert "version 2" in detail
    # The reminder sweep forgets it: the case is no longer at the discussion step.
    send_reminders(missed.starts_at - timedelta(hours=20))
    assert mail(case_id, "discussion_reminder") == []


def test_held_without_an_invitation_still_needs_its_date(case_id: int) -> None:
    assert answer(case_id, choice="Discussion held and the officer engaged") is (
        S.DISCUSSION_SCHEDULING)
    assert audit_details(case_id, "decision_rejected")[-1] == (
        "Enter the date the discussion was held")
    assert answer(case_id, choice="Discussion held and the officer engaged",
                  held_on=date.today().isoformat()) is S.DISCUSSION_HELD


def test_the_reminder_goes_the_working_day_before_once_per_version(case_id: int) -> None:
    day = working_days_ahead(4)
    invite(case_id, day)
    seven = datetime.combine(working_day_before(day), time(7), tzinfo=LONDON)

    def reminded(as_of: datetime) -> list[str]:
        """The sweep's reminders as of `as_of` (other tests' cases share the DB)."""
        send_reminders(as_of)
        return sorted(r.recipient for r in mail(case_id, "discussion_reminder"))

    assert reminded(seven - timedelta(days=1)) == []
    assert reminded(seven) == sorted([officer_email(case_id), REVIEWER])
    assert len(reminded(seven)) == 2
    [to_officer] = [r for r in mail(case_id, "discussion_reminder") if r.recipient != REVIEWER]
    assert meeting_text(versions(case_id)[0].starts_at) in to_officer.body_text
    # Moved to a later day: the new version is reminded in its turn, once.
    later = england_and_wales().add_working_days(day, 2)
    invite(case_id, later, choice=MOVE)
    assert len(reminded(seven)) == 2
    later_seven = datetime.combine(working_day_before(later), time(7), tzinfo=LONDON)
    assert len(reminded(later_seven)) == 4
    assert len(reminded(later_seven)) == 4


def test_a_case_closed_during_the_step_cancels_the_officers_calendar_entry(case_id: int) -> None:
    invite(case_id, working_days_ahead(3))
    close_externally(case_id, S.CANCELLED, actor=PSD, reason="Made in error")
    [row] = mail(case_id, "discussion_cancelled")
    assert event_of(row)[0] == "CANCEL"
    assert versions(case_id)[-1].status is InvitationStatus.CANCELLED


def test_a_refusal_is_not_shown_again_once_the_invitation_is_accepted(case_id: int) -> None:
    invite(case_id, datetime.now(LONDON).date() - timedelta(days=1))
    wait = wait_for(case_row(case_id))
    assert wait is not None and "is in the past" in describe(case_id, wait)
    invite(case_id, working_days_ahead(3))
    wait = wait_for(case_row(case_id))
    assert wait is not None
    text = describe(case_id, wait)
    assert "Invitation:" in text and "not accepted" not in text


def test_the_gateway_refuses_a_broken_invitation_at_once_and_stores_nothing(
        case_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer learns in the Resume form itself (Prefect never sees the answer), instead
    of seeing "resumed" and the flow's refusal later."""
    monkeypatch.undo()
    wait = advance(case_id)[1]
    assert wait is not None
    yesterday = (datetime.now(LONDON).date() - timedelta(days=1)).isoformat()
    cases = {
        "To invite the officer or move the meeting, enter the date of the meeting": dict(
            choice=INVITE, meeting_time="10:00", place="Interview room 2"),
        "is in the past": dict(choice=INVITE, meeting_date=yesterday, meeting_time="10:00",
                               place="Interview room 2"),
        "There is no invitation to move": dict(choice=MOVE, meeting_date=yesterday,
                                               meeting_time="10:00", place="Room 2"),
        "There is no invitation to cancel": dict(choice=CANCEL),
        "non-attendance cannot be recorded": dict(choice="Officer did not attend"),
    }
    for expected, values in cases.items():
        with pytest.raises(AssertionError, match=expected):
            through_gateway(case_id, wait, values)
    with session_scope() as session:
        assert session.exec(select(DecisionSubmission)
                            .where(DecisionSubmission.case_id == case_id,
                                   DecisionSubmission.step_key == wait.key)).all() == []
    assert versions(case_id) == [] and mail(case_id, "discussion_invitation") == []
    assert case_row(case_id).rejected_inputs == 0

    # A good invitation still goes through.
    through_gateway(case_id, wait, dict(choice=INVITE,
                                        meeting_date=working_days_ahead(2).isoformat(),
                                        meeting_time="10:00", place="Interview room 2"))
