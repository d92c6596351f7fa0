"""A multi-agency reflective practice meeting from request to closure through a real `rprp-rpm`
flow run, the real SMTP sink and the case DB: three agencies' invitees reply through their signed
links in the portal (one declines and names a colleague, who is invited and confirms), the record
is completed and distributed, the CRC decides through the gateway, as the Prefect UI's Resume
form does, and the meeting closes. A marker in the child's name and the log appears in no Prefect record
(parameters, inputs, logs, task runs) and in no email."""

from __future__ import annotations

import re
from datetime import date, timedelta
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)

from infra.db import session_scope
from infra.mailsink import MailSink
from models import utc_now
from models.meetings import CrcChoice, Meeting, MeetingState
from portal.app import create_app
from portal.auth import User
from portal.gateway import submit_decision
from tasks import meetings as rules
from tasks.meeting_orchestration import start_meeting_flow, wake_meeting
from tests.support.stack import WAIT_CEILING, eventually

M = MeetingState
pytestmark = [pytest.mark.integration]
MARKER = "Xylophonechild"
AGENCIES = (("Children's Social Care", "Social worker"), ("Health visiting", "Health visitor"),
            ("Police", "Detective constable"))


AS_CRC = User("CRC chair", "crc.chair@partnership.example", frozenset({"crc-chair"}))


async def crc_decides(run_id: str, **answer: str) -> dict[str, object]:
    """What the Prefect UI's Resume form sends for the CRC's step, through the gateway."""
    async with httpx.AsyncClient(timeout=30) as client:
        result = await submit_decision(AS_CRC, run_id, answer, client)
    assert result is not None, "the run is a meeting's"
    return result


def meeting_row(meeting_id: int) -> Meeting:
    with session_scope() as session:
        return rules.get_meeting(session, meeting_id)


async def paused_in(meeting_id: int, state: MeetingState) -> Meeting:
    async def check() -> Meeting | None:
        meeting = meeting_row(meeting_id)
        if meeting.state is not state or not meeting.flow_run_id:
            return None
        async with get_client() as client:
            run = await client.read_flow_run(UUID(meeting.flow_run_id))
        return meeting if run.state and run.state.is_paused() else None

    found = await eventually(check, WAIT_CEILING, f"meeting {meeting_id} paused in {state}")
    assert isinstance(found, Meeting)
    return found


def link_in(sink: MailSink, recipient: str) -> str:
    mails = [m for m in sink.messages() if recipient in m.recipients]
    assert mails, f"no email to {recipient}"
    found = re.search(r"(http://\S+/meetings/invitation/\S+)", mails[-1].text)
    assert found, mails[-1].text
    return urlsplit(found.group(1)).path  # the portal's path, whatever RPRP_PORTAL_URL says


async def mail_to(sink: MailSink, recipient: str) -> None:
    await eventually(lambda: any(recipient in m.recipients for m in sink.messages()), 90,
                     f"mail to {recipient}")


async def test_a_meeting_from_request_to_closure_keeps_the_child_out_of_prefect_and_email(
        stack, mail_sink: MailSink) -> None:
    now = utc_now()
    with session_scope() as session:
        meeting = rules.request_meeting(
            session, now, child_name=f"Tia {MARKER}", child_date_of_birth=date(2016, 3, 1),
            family_names="Olga Vantablack", requested_by_name="Rita Requester",
            requested_by_agency="School", requested_by_email="rita@school.example",
            facilitator_name="Faye Facil", facilitator_email="faye@council.example",
            purpose=f"Reflect on {MARKER}'s journey.", meeting_on=now.date() + timedelta(days=7))
        for n, (agency, role) in enumerate(AGENCIES):
            rules.add_invitee(session, meeting, rules.Invitation(
                name=f"Prof{n} Surname{n}", email=f"prof{n}@agency{n}.example", agency=agency,
                role=role, manager_email=f"boss{n}@agency{n}.example"), now, actor="faye")
        meeting_id = meeting.id
    assert meeting_id is not None
    run_id = await start_meeting_flow(meeting_id)
    await paused_in(meeting_id, M.INVITATIONS_SENT)

    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://127.0.0.1:8765") as portal:
        for n in (0, 2):
            await mail_to(mail_sink, f"prof{n}@agency{n}.example")
            path = link_in(mail_sink, f"prof{n}@agency{n}.example")
            page = await portal.get(path)
            assert page.status_code == 200 and MARKER in page.text  # their own meeting's page
            refused = await portal.post(path, data={"answer": "confirm"})
            assert refused.status_code == 400 and "whole meeting" in refused.text
            ok = await portal.post(path, data={"answer": "confirm", "whole_meeting": "yes"})
            assert ok.status_code == 303
        await mail_to(mail_sink, "prof1@agency1.example")
        declined = await portal.post(link_in(mail_sink, "prof1@agency1.example"), data={
            "answer": "decline", "colleague_name": "Cole League",
            "colleague_email": "cole@agency1.example", "colleague_agency": "Health visiting",
            "colleague_role": "Health visitor"})
        assert declined.status_code == 303
        await mail_to(mail_sink, "cole@agency1.example")
        colleague = link_in(mail_sink, "cole@agency1.example")
        assert (await portal.post(colleague, data={"answer": "confirm",
                                                   "whole_meeting": "yes"})).status_code == 303
        assert (await portal.post(colleague, data={
            "answer": "contribute", "contribution": f"What I knew about {MARKER}."})
        ).status_code == 303
        assert (await portal.get(colleague[:-3] + "abc")).status_code == 403

    # The facilitator's steps, as the portal's meeting page takes them, each waking the run.
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        rules.hold_meeting(session, meeting, now.date(), now, actor="faye")
    await wake_meeting(meeting_id)
    await paused_in(meeting_id, M.MEETING_HELD)
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        rules.save_log(session, meeting, now, actor="faye", case_name="Case T",
                       issues_and_timescales=f"Worries about {MARKER}", learning_points="Share",
                       conclusions="Joint visits")
        rules.add_timeline_entry(session, meeting, date(2024, 2, 1), f"{MARKER} moved school",
                                 "Records did not follow", now, actor="faye")
        rules.sign_off_record(session, meeting, "Faye Facil", now.date(), now)
    await wake_meeting(meeting_id)
    await paused_in(meeting_id, M.RECORD_DISTRIBUTED)
    await mail_to(mail_sink, "boss0@agency0.example")
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        with pytest.raises(rules.NameInSummary):
            rules.save_crc_summary(session, meeting, chair="Chair", now=now,
                                   learning_to_share=f"{MARKER} was missed.")
        rules.save_crc_summary(session, meeting, chair="Head of service, social care", now=now,
                               learning_to_share="School moves must carry the records.")
    await wake_meeting(meeting_id)
    await paused_in(meeting_id, M.SENT_TO_BUSINESS_UNIT)
    await mail_to(mail_sink, "business-unit@partnership.example")

    # The CRC's decision: the resume the Prefect UI's form sends, through the gateway.
    result = await crc_decides(run_id, decision=CrcChoice.PLAN_ACTION.value,
                               plan="A multi-agency workshop.")
    assert result["status"] == "ACCEPT", result
    await paused_in(meeting_id, M.CRC_CONSIDERED)
    assert meeting_row(meeting_id).crc_choice == "plan_action"
    assert meeting_row(meeting_id).crc_decided_by == AS_CRC.email
    with session_scope() as session:
        rules.disseminate_learning(session, rules.get_meeting(session, meeting_id),
                                   "Two briefings", now, actor="business-unit")
    await wake_meeting(meeting_id)

    async def completed() -> str | None:
        async with get_client() as client:
            run = await client.read_flow_run(UUID(run_id))
        return run.state.name if run.state and run.state.is_final() else None

    assert await eventually(completed, WAIT_CEILING, "the meeting's run to end") == "Completed"
    assert meeting_row(meeting_id).state is M.CLOSED

    # Nothing of the child in Prefect: parameters, run inputs, logs, task runs; nor in email.
    async with get_client() as client:
        run = await client.read_flow_run(UUID(run_id))
        inputs = await client.filter_flow_run_input(UUID(run_id), key_prefix="", limit=200,
                                                    exclude_keys=set())
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
        task_runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[run.id])))
    assert run.parameters == {"meeting_id": meeting_id}
    prefect_text = " ".join([str(run.parameters), run.name, *(i.value for i in inputs),
                             *(log.message for log in logs),
                             *(t.name for t in task_runs)])
    assert inputs and logs and task_runs
    for secret in (MARKER, "Vantablack", "Surname0", "Cole League", "multi-agency workshop"):
        assert secret not in prefect_text  # the CRC's plan too: Prefect holds only its token
    names = {t.name.rsplit(" ", 1)[0] for t in task_runs}
    assert {"send-invitations", "distribute-record", "send-to-business-unit",
            "crc-consideration", "close-meeting"} <= names
    mails = mail_sink.messages()
    assert len([m for m in mails if "prof0@agency0.example" in m.recipients]) >= 2
    for message in mails:
        assert MARKER not in message.subject + message.text + message.html
        assert "Vantablack" not in message.text


async def test_the_demo_meeting_reaches_the_crc_which_escalates_after_a_named_plan_is_refused(
        stack, mail_sink: MailSink) -> None:
    from rprp.meeting_demo import meeting_to_crc

    meeting = await meeting_to_crc(child_name=f"Demo {MARKER}")
    assert meeting.id is not None and meeting.flow_run_id
    run_id = UUID(meeting.flow_run_id)
    refused = await crc_decides(str(run_id), decision=CrcChoice.ESCALATE.value,
                                plan=f"Because of {MARKER}")
    assert refused["status"] == "REJECT" and "child's name" in refused["details"]["reason"]
    assert MARKER not in refused["details"]["reason"]
    assert meeting_row(meeting.id).state is M.SENT_TO_BUSINESS_UNIT
    taken = await crc_decides(str(run_id), decision=CrcChoice.ESCALATE.value,
                              plan="Serious harm criteria are met.")
    assert taken["status"] == "ACCEPT", taken

    async def ended() -> str | None:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
        return run.state.name if run.state and run.state.is_final() else None

    assert await eventually(ended, WAIT_CEILING, "the run to end") == "Completed"
    assert meeting_row(meeting.id).state is M.ESCALATED
    await mail_to(mail_sink, "business-unit@partnership.example")
    assert any("child safeguarding practice review" in m.text for m in mail_sink.messages()
               if "business-unit@partnership.example" in m.recipients)
