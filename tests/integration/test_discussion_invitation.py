"""The officer's invitation to the discussion, as it reaches a real SMTP server: an email with a
parseable `.ics` (METHOD:REQUEST); a move sends a replacement with the same UID and a higher
SEQUENCE; the sweep's reminder goes once, the working day before, with time moved by `as_of`.

The case is driven through the steps its flow calls (`advance`, `apply_answer`), as in
test_case_clock.py; the sweep is the real one against the real Prefect server.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from typing import Any

import pytest
from icalendar import Calendar

from infra.db import session_scope
from infra.mailsink import StoredMessage, read_messages
from models.enums import CaseState
from models.forms import DiscussionOutcome, FactFindingDecision
from tasks.calendar import LONDON, england_and_wales
from tasks.casework import advance, apply_answer, record_account
from tasks.deadline_sweep import sweep
from tasks.discussion_invitation import working_day_before
from tasks.intake import create_case
from tasks.notify import deliver_pending
from tasks.records import officer_of
from tests.support.cases import PSD, REVIEWER, case_row, outbox, sample_referral, through_gateway

S = CaseState
pytestmark = [pytest.mark.integration]


def answer(case_id: int, form: type, **values: Any) -> CaseState:
    wait = advance(case_id)[1]
    assert wait is not None
    return apply_answer(case_id, wait.key, through_gateway(case_id, wait, values))


def calendar_part(message: StoredMessage) -> tuple[EmailMessage, Calendar]:
    """The message's one text/calendar attachment, parsed by icalendar."""
    parsed = message_from_bytes(message.file.read_bytes(), policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    parts = [p for p in parsed.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, [p.get_content_type() for p in parsed.iter_attachments()]
    part = parts[0]
    assert isinstance(part, EmailMessage)
    return part, Calendar.from_ical(part.get_content())


def received(mail_sink: Any, case_id: int, kind: str) -> list[StoredMessage]:
    """What the SMTP server received of this case's emails of `kind`, oldest first."""
    keys = {row.key for row in outbox(case_id) if row.kind == kind}
    return [m for m in read_messages(mail_sink.directory)
            if m.headers.get("X-RPRP-Outbox-Key") in keys]


async def test_invitation_move_and_reminder_reach_the_officer(prefect_api: str,
                                                              mail_sink: Any) -> None:
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        case_id = case.id
        assert case_id is not None
        officer_email = officer_of(session, case).email
    advance(case_id)
    record_account(case_id, 1, "My account of the stop, in enough words.")
    assert answer(case_id, FactFindingDecision,
                  choice="No fact-finding needed: go to the discussion") is S.DISCUSSION_SCHEDULING

    calendar = england_and_wales()
    first_day = calendar.add_working_days(datetime.now(LONDON).date(), 3)
    assert answer(case_id, DiscussionOutcome,
                  choice="Invite the officer: send the date, time and place below",
                  meeting_date=first_day.isoformat(), meeting_time="10:00",
                  place="Interview room 2, Central police station") is S.DISCUSSION_SCHEDULING
    await deliver_pending()
    [invitation] = received(mail_sink, case_id, "discussion_invitation")
    assert invitation.recipients == [officer_email]
    part, ics = calendar_part(invitation)
    assert part.get_filename() == "invitation.ics"
    assert part.get_param("method") == "REQUEST"
    assert str(ics["METHOD"]) == "REQUEST"
    [event] = ics.walk("VEVENT")
    uid, first_sequence = str(event["UID"]), int(event["SEQUENCE"])
    starts = datetime.combine(first_day, time(10), tzinfo=LONDON)
    assert event.decoded("dtstart") == starts
    assert str(event["ATTENDEE"]) == f"mailto:{officer_email}"
    assert f"{first_day:%A} {first_day.day} {first_day:%B %Y}, 10:00" in invitation.text

    # Moved to a later day: a replacement with the same UID and a higher SEQUENCE.
    new_day = calendar.add_working_days(first_day, 2)
    assert answer(case_id, DiscussionOutcome,
                  choice="Move the meeting: send a new invitation with the date, time and place "
                         "below",
                  meeting_date=new_day.isoformat(), meeting_time="14:00",
                  meeting_format="Video call",
                  place="https://video.force.example/rprp-room") is S.DISCUSSION_SCHEDULING
    await deliver_pending()
    first, replacement = received(mail_sink, case_id, "discussion_invitation")
    assert first.file == invitation.file
    _, moved = calendar_part(replacement)
    [moved_event] = moved.walk("VEVENT")
    assert str(moved["METHOD"]) == "REQUEST"
    assert str(moved_event["UID"]) == uid
    assert int(moved_event["SEQUENCE"]) > first_sequence
    assert moved_event.decoded("dtstart") == datetime.combine(new_day, time(14), tzinfo=LONDON)
    assert "video.force.example" in str(moved_event["LOCATION"])
    assert "replaces" in replacement.text

    # The sweep: nothing before the working day before the new date; then one reminder each to
    # the officer and the reviewer, once however often it runs; none for the replaced version.
    day_before = working_day_before(new_day)
    await sweep(datetime.combine(day_before - timedelta(days=1), time(7), tzinfo=LONDON))
    await deliver_pending()
    assert received(mail_sink, case_id, "discussion_reminder") == []
    for _ in range(2):
        await sweep(datetime.combine(day_before, time(7), tzinfo=LONDON))
        await deliver_pending()
    reminders = received(mail_sink, case_id, "discussion_reminder")
    assert sorted(r.recipients[0] for r in reminders) == sorted([officer_email, REVIEWER])
    assert all(f"{new_day:%A} {new_day.day} {new_day:%B %Y}, 14:00" in r.subject
               for r in reminders)
    await sweep(datetime.combine(new_day, time(7), tzinfo=LONDON))
    await deliver_pending()
    assert len(received(mail_sink, case_id, "discussion_reminder")) == 2
    assert case_row(case_id).state is S.DISCUSSION_SCHEDULING
