"""The portal's reflective practice meeting pages against the case DB, the run's wake recorded
instead of made: an invitee's link opens its own meeting only and takes whole-meeting attendance;
the facilitator's page (role rpm-facilitator) takes the steps and refuses a named CRC summary;
people without the role are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from infra.db import session_scope
from infra.settings import reset_settings
from models import utc_now
from models.meetings import MeetingInvitee, MeetingState
from portal import meetings as pages
from portal.app import create_app
from tasks import meetings as rules
from tests.support.users import use_sign_ins

USERS = "faci.user:faci-pass-1:rpm-facilitator,rev.user:rev-pass-1:reviewer"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    async def wake(meeting_id: int) -> None:
        calls.append(meeting_id)

    monkeypatch.setattr(pages, "wake", wake)
    return calls


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch, woken: list[int]) -> Iterator[TestClient]:
    monkeypatch.setenv("RPRP_PORTAL_USERS", USERS)
    reset_settings()
    use_sign_ins(USERS)
    with TestClient(create_app()) as client:
        yield client


def sign_in(client: TestClient, name: str, password: str) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"username": name, "password": password,
                                           "csrf_token": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                                           "next": "/cases"}, follow_redirects=False)
    assert response.status_code == 303


def invited_meeting() -> tuple[int, str, int]:
    now = utc_now()
    with session_scope() as session:
        meeting = rules.request_meeting(
            session, now, child_name="Nina Pagechild", child_date_of_birth=date(2019, 1, 1),
            family_names="", requested_by_name="Ruth R", requested_by_agency="School",
            requested_by_email="ruth@school.example", facilitator_name="Fay F",
            facilitator_email="fay@council.example", purpose="Reflect on the journey.")
        invitee = rules.add_invitee(session, meeting, rules.Invitation(
            name="Ivy Invitee", email="ivy@health.example", agency="Health",
            role="Nurse"), now, actor="fay")
        rules.send_invitations(session, meeting, now)
        assert meeting.id is not None and invitee.id is not None
        token = rules.link_for(meeting, invitee).rsplit("/", 1)[1]
        return meeting.id, token, invitee.id


def test_an_invitee_link_opens_its_own_meeting_and_takes_whole_attendance(
        http: TestClient, woken: list[int]) -> None:
    first, token, invitee_id = invited_meeting()
    invited_meeting()
    page = http.get(f"/meetings/invitation/{token}")
    assert page.status_code == 200 and "Reflect on the journey." in page.text
    assert http.get(f"/meetings/invitation/{token}x").status_code == 403
    refused = http.post(f"/meetings/invitation/{token}", data={"answer": "confirm"})
    assert refused.status_code == 400 and "whole meeting" in refused.text
    assert woken == []
    http.post(f"/meetings/invitation/{token}", data={"answer": "confirm", "whole_meeting": "yes"})
    assert woken == [first]
    with session_scope() as session:
        invitee = session.get(MeetingInvitee, invitee_id)
        assert invitee is not None and invitee.status.value == "confirmed"


def test_the_facilitator_takes_the_steps_and_a_named_summary_is_refused(http: TestClient) -> None:
    meeting_id, token, _ = invited_meeting()
    http.post(f"/meetings/invitation/{token}", data={"answer": "confirm", "whole_meeting": "yes"})
    sign_in(http, "faci.user", "faci-pass-1")
    today = utc_now().date().isoformat()

    def step(**data: str) -> str:
        page = http.get(f"/meetings/{meeting_id}")
        assert page.status_code == 200
        data["csrf_token"] = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        return http.post(f"/meetings/{meeting_id}", data=data).text

    step(step="held", held_on=today)
    step(step="log", case_name="Case N", issues_and_timescales="Issues",
         learning_points="Points", cross_agency_learning="", single_agency_learning="",
         conclusions="Conclusions")
    step(step="timeline", on="2024-01-01", what_happened="Moved home", learning_point="")
    step(step="action", description="Brief staff", owner="Head of service", due_on="2099-01-01")
    step(step="sign", chair="Fay F", signed_on=today)
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        rules.distribute_record(session, meeting, utc_now())
    refused = step(step="summary", chair="Chair", learning="Nina was not seen.")
    assert "the child&#39;s name" in refused or "the child's name" in refused
    assert "Learning to be shared" in step(step="summary", chair="Head of service",
                                           learning="Records must follow moves.")
    with session_scope() as session:
        assert rules.get_meeting(session, meeting_id).state is MeetingState.RECORD_DISTRIBUTED
        summary = rules.crc_summary(session, meeting_id)
        assert summary is not None and summary.child_age >= 5


def test_people_without_the_role_cannot_open_a_meeting(http: TestClient) -> None:
    meeting_id, _, _ = invited_meeting()
    sign_in(http, "rev.user", "rev-pass-1")
    assert http.get(f"/meetings/{meeting_id}").status_code == 403
