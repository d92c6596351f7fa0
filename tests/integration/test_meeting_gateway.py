"""The Case Review Committee decides on a reflective practice meeting through the gateway's HTTP
door, as the Prefect UI's Resume form does, with a real Prefect server and worker: a plan holding
a recorded name is refused before Prefect sees it (no text in the run's inputs, the run still
waits on the same pause), an answer sent to Prefect past the gateway is refused by the flow, a
reviewer sees no meeting run and may not decide, and the accepted decision is recorded with the
signed-in person and the plan read back from the case DB; the meeting's learning joins the
learning register, tagged multi-agency."""

from __future__ import annotations

from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models.meetings import CrcChoice, CrcSubmission, MeetingEvent, MeetingState
from portal.app import create_app
from tasks import learning_register
from tasks import meetings as rules
from tests.integration.test_gateway import sign_in
from tests.support.stack import WAIT_CEILING, eventually
from tests.support.users import use_sign_ins

M = MeetingState
pytestmark = [pytest.mark.integration]
MARKER = "Quillanmarker"
CRC = "crc.member@partnership.example"
REVIEWER = "sgt.meetingless@force.example"
USERS = f"{CRC}:crc-pass-1:crc-chair,{REVIEWER}:rev-pass-1:reviewer"


async def pause_key(run_id: str) -> str | None:
    async with get_client() as client:
        run = await client.read_flow_run(UUID(run_id))
    if run.state is None or not run.state.is_paused():
        return None
    return run.state.state_details.pause_key


async def prefect_inputs(run_id: str) -> str:
    async with get_client() as client:
        inputs = await client.filter_flow_run_input(UUID(run_id), key_prefix="", limit=200,
                                                    exclude_keys=set())
    return " ".join(i.value for i in inputs)


def submissions(meeting_id: int) -> list[CrcSubmission]:
    with session_scope() as session:
        return list(session.exec(select(CrcSubmission).where(
            CrcSubmission.meeting_id == meeting_id)))


def refusals(meeting_id: int) -> list[MeetingEvent]:
    with session_scope() as session:
        return list(session.exec(select(MeetingEvent).where(
            MeetingEvent.meeting_id == meeting_id,
            MeetingEvent.action == "crc_answer_refused")))


async def test_the_crc_decides_through_the_gateway_and_no_name_reaches_prefect(
        stack, monkeypatch, tmp_path) -> None:
    from rprp.meeting_demo import meeting_to_crc

    meeting = await meeting_to_crc(child_name=f"Lena {MARKER}")
    assert meeting.id is not None and meeting.flow_run_id
    run_id, meeting_id = meeting.flow_run_id, meeting.id
    resume = f"/prefect/api/flow_runs/{run_id}/resume"
    monkeypatch.setenv("RPRP_PORTAL_USERS", USERS)
    reset_settings()
    use_sign_ins(USERS)
    with TestClient(create_app(mail_dir=tmp_path)) as crc, \
            TestClient(create_app(mail_dir=tmp_path)) as reviewer:
        sign_in(crc, CRC, "crc-pass-1")
        sign_in(reviewer, REVIEWER, "rev-pass-1")

        # A reviewer sees no meeting's run and may not decide on one.
        assert reviewer.get(f"/prefect/api/flow_runs/{run_id}").status_code == 403
        listed = reviewer.post("/prefect/api/flow_runs/filter", json={"limit": 200}).json()
        assert run_id not in {r["id"] for r in listed}
        refused = reviewer.post(resume, json={"run_input": {
            "decision": CrcChoice.SHARE_ONLY.value, "plan": ""}}).json()
        assert refused["status"] == "REJECT" and "Case Review Committee" in (
            refused["details"]["reason"])

        # The CRC sees the meeting's run in the Prefect UI.
        assert crc.get(f"/prefect/api/flow_runs/{run_id}").json()["id"] == run_id
        listed = crc.post("/prefect/api/flow_runs/filter", json={"limit": 200}).json()
        assert run_id in {r["id"] for r in listed}

        # A plan naming the child: refused at the gateway, nothing reaches Prefect or is kept.
        key = await pause_key(run_id)
        named = crc.post(resume, json={"run_input": {
            "decision": CrcChoice.PLAN_ACTION.value,
            "plan": f"Ask why {MARKER} was missed."}}).json()
        assert named["status"] == "REJECT"
        assert "child's name" in named["details"]["reason"]
        assert MARKER not in named["details"]["reason"]
        assert submissions(meeting_id) == []
        assert MARKER not in await prefect_inputs(run_id)
        assert await pause_key(run_id) == key

        # An answer sent to Prefect past the gateway: the flow refuses it and asks again.
        async with get_client() as client:
            await client.resume_flow_run(UUID(run_id), run_input={
                "decision": CrcChoice.SHARE_ONLY.value, "plan": ""})
        await eventually(lambda: refusals(meeting_id), WAIT_CEILING,
                         "the flow to refuse the forged answer")
        (event,) = refusals(meeting_id)
        assert event.actor == "unverified" and "gateway" in event.detail

        async def asked_again() -> str | None:
            new_key = await pause_key(run_id)
            return new_key if new_key not in (None, key) else None

        await eventually(asked_again, WAIT_CEILING, "the CRC's form asked again")
        with session_scope() as session:
            assert rules.get_meeting(session, meeting_id).state is M.SENT_TO_BUSINESS_UNIT

        # The CRC's decision through the gateway: taken, the signed-in member recorded.
        plan = "A multi-agency workshop on school transfers for frontline staff."
        taken = crc.post(resume, json={"run_input": {
            "decision": CrcChoice.PLAN_ACTION.value, "plan": plan}}).json()
        assert taken["status"] == "ACCEPT", taken

    async def considered() -> object:
        with session_scope() as session:
            found = rules.get_meeting(session, meeting_id)
        return found if found.state is M.CRC_CONSIDERED else None

    await eventually(considered, WAIT_CEILING, "the CRC's decision applied")
    with session_scope() as session:
        decided = rules.get_meeting(session, meeting_id)
    assert decided.crc_decided_by == CRC and decided.crc_plan == plan
    assert decided.crc_choice == "plan_action"
    (submission,) = submissions(meeting_id)
    assert submission.decided_by == CRC and submission.plan == plan
    inputs = await prefect_inputs(run_id)
    assert "workshop" not in inputs and MARKER not in inputs
    assert f"sealed:{submission.token}" in inputs

    # The meeting's learning to be shared is in the learning register, tagged multi-agency.
    with session_scope() as session:
        items = learning_register.items_of_meeting(session, meeting_id)
    assert [(i.origin, i.case_id) for i in items] == [("multi-agency", None)]
    assert "records and the multi-agency chronology must follow" in items[0].text
