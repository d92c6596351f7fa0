"""A sample reflective practice meeting driven to the Case Review Committee's step, for
`rprp demo` and the tests: three agencies' invitees (one declines and names a colleague), the
meeting held, the learning log signed, the CRC summary saved. The names are invented."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta
from uuid import UUID

from prefect.client.orchestration import get_client

from infra.db import session_scope
from models import utc_now
from models.meetings import Meeting, MeetingState
from tasks import meetings as rules
from tasks.meeting_orchestration import start_meeting_flow, wake_meeting

M = MeetingState
INVITEES = (
    rules.Invitation("Sam Adeyemi", "sam.social@council.example", "Children's Social Care",
                     "Social worker", "team.manager@council.example"),
    rules.Invitation("Hana Kowalski", "hana.health@nhs.example", "Health visiting",
                     "Health visitor", "hv.lead@nhs.example"),
    rules.Invitation("Pat Lindqvist", "pat.police@force.example", "Police",
                     "Detective constable", "ds.manager@force.example"),
)
COLLEAGUE = rules.Invitation("Nia Brennan", "nia.nurse@nhs.example", "Health visiting",
                             "Health visitor")


async def wait_paused(meeting_id: int, state: MeetingState, timeout: float = 180) -> Meeting:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with session_scope() as session:
            meeting = rules.get_meeting(session, meeting_id)
        if meeting.state is state and meeting.flow_run_id:
            async with get_client() as client:
                run = await client.read_flow_run(UUID(meeting.flow_run_id))
            if run.state and run.state.is_paused():
                return meeting
        await asyncio.sleep(0.5)
    raise TimeoutError(f"meeting {meeting_id} did not reach {state.value} in {timeout}s: is the "
                       "worker running (rprp up)?")


async def meeting_to_crc(child_name: str = "Skye Tarrant") -> Meeting:
    """Request → invitations → replies → held → log signed → summary: paused at the CRC."""
    now = utc_now()
    with session_scope() as session:
        meeting = rules.request_meeting(
            session, now, child_name=child_name, child_date_of_birth=date(2017, 6, 1),
            family_names="Dale Marsh", requested_by_name="Rae Okafor",
            requested_by_agency="Primary school", requested_by_email="rae@school.example",
            facilitator_name="Fern Whitlock", facilitator_email="facilitator@partnership.example",
            purpose="Reflect together on the child's journey since the move to the area.",
            meeting_on=now.date() + timedelta(days=14), place="Partnership offices, room 1")
        people = [rules.add_invitee(session, meeting, i, now, actor="demo") for i in INVITEES]
        meeting_id = meeting.id
    assert meeting_id is not None
    await start_meeting_flow(meeting_id)
    await wait_paused(meeting_id, M.INVITATIONS_SENT)
    with session_scope() as session:
        ids = [p.id for p in people if p.id is not None]
        rules.confirm_attendance(session, meeting_id, ids[0], now, whole_meeting=True)
        rules.confirm_attendance(session, meeting_id, ids[2], now, whole_meeting=True)
        colleague = rules.decline_attendance(session, meeting_id, ids[1], now, colleague=COLLEAGUE)
        assert colleague.id is not None
        rules.confirm_attendance(session, meeting_id, colleague.id, now, whole_meeting=True)
        meeting = rules.get_meeting(session, meeting_id)
        rules.hold_meeting(session, meeting, now.date(), now, actor="demo")
    await wake_meeting(meeting_id)
    await wait_paused(meeting_id, M.MEETING_HELD)
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        rules.save_log(session, meeting, now, actor="demo", case_name="Demo case",
                       issues_and_timescales="School moves; the last two years.",
                       learning_points="Records did not follow the child between schools.",
                       cross_agency_learning="Share the chronology when a child moves area.",
                       single_agency_learning="Health: check the transfer was received.",
                       conclusions="Earlier joint working would have helped.")
        rules.add_timeline_entry(session, meeting, now.date() - timedelta(days=400),
                                 "Moved to the area and changed school",
                                 "No records followed", now, actor="demo")
        rules.add_action(session, meeting, "Joint briefing on transfers", "Head of service",
                         now.date() + timedelta(days=60), now, actor="demo")
        rules.sign_off_record(session, meeting, "Fern Whitlock", now.date(), now)
    await wake_meeting(meeting_id)
    await wait_paused(meeting_id, M.RECORD_DISTRIBUTED)
    with session_scope() as session:
        rules.save_crc_summary(session, rules.get_meeting(session, meeting_id),
                               chair="Head of service, Children's Social Care", now=now,
                               learning_to_share="When a child moves school, records and the "
                                                 "multi-agency chronology must follow.")
    await wake_meeting(meeting_id)
    return await wait_paused(meeting_id, M.SENT_TO_BUSINESS_UNIT)
