"""The portal's reflective practice meeting pages against the case DB, the run's wake recorded
instead of made: an invitee's link opens its own meeting only and takes whole-meeting attendance;
the facilitator's page (role rpm-facilitator) takes the steps and refuses a named CRC summary;
people without the role are refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import utc_now
from models.meetings import CrcSummary, MeetingAction, MeetingInvitee, MeetingState
from portal import meetings as pages
from portal.app import create_app
from tasks import meetings as rules
from tests.support.users import use_sign_ins

USERS = ("faci.user:faci-pass-1:rpm-facilitator,rev.user:rev-pass-1:reviewer,"
         "crc.user:crc-pass-1:crc-chair")
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
    step(step="action", description="Brief staff", owner="Head of service", due_on="2099-01-01",
         owner_email="head@council.example")
    with session_scope() as session:
        (action,) = session.exec(select(MeetingAction).where(
            MeetingAction.meeting_id == meeting_id)).all()
    assert action.owner_email == "head@council.example" and action.status.value == "open"
    assert "Mark action 1 done" in http.get(f"/meetings/{meeting_id}").text
    step(step="action_done", action_id=str(action.id))
    with session_scope() as session:
        done = session.get(MeetingAction, action.id)
        assert done is not None and done.status.value == "done" and done.done_on is not None
    assert "Mark action 1 done" not in http.get(f"/meetings/{meeting_id}").text
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


def test_the_crc_reads_the_summary_without_names_and_not_the_record(http: TestClient) -> None:
    meeting_id, _, _ = invited_meeting()
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        session.add(CrcSummary(meeting_id=meeting_id, child_age=7, meeting_on=date(2026, 11, 2),
                               chair="Head of service", learning_to_share="Records must follow."))
        meeting.state = MeetingState.SENT_TO_BUSINESS_UNIT
        session.add(meeting)
    sign_in(http, "crc.user", "crc-pass-1")
    page = http.get(f"/meetings/{meeting_id}/summary")
    assert page.status_code == 200 and "Records must follow." in page.text
    assert "Nina" not in page.text and "Pagechild" not in page.text
    assert http.get(f"/meetings/{meeting_id}").status_code == 403


def test_people_without_the_role_cannot_open_a_meeting(http: TestClient) -> None:
    meeting_id, _, _ = invited_meeting()
    sign_in(http, "rev.user", "rev-pass-1")
    assert http.get(f"/meetings/{meeting_id}").status_code == 403


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    async def start(meeting_id: int) -> bool:
        calls.append(meeting_id)
        return True

    monkeypatch.setattr(pages, "start", start)
    return calls


def request_data(child: str, **overrides: str) -> dict[str, str]:
    data = {"child_name": child, "child_date_of_birth": "2018-04-02",
            "family_names": "Gwen Parentname", "requested_by_name": "Rhys Requester",
            "requested_by_agency": "Primary school", "requested_by_email": "rhys@school.example",
            "purpose": "Reflect on the child's journey since the school move.",
            "facilitator_name": "Faci User", "facilitator_email": "faci@council.example",
            "invitee_name_1": "Ola Social", "invitee_email_1": "ola@council.example",
            "invitee_agency_1": "Children's Social Care", "invitee_role_1": "Social worker",
            "invitee_manager_1": "tm@council.example",
            "invitee_name_2": "Ben Health", "invitee_email_2": "ben@nhs.example",
            "invitee_agency_2": "Health visiting", "invitee_role_2": "Health visitor"}
    return {**data, **overrides}


def meetings_of(child: str) -> list[int]:
    from models.meetings import Meeting

    with session_scope() as session:
        return [m.id for m in session.exec(select(Meeting).where(Meeting.child_name == child))
                if m.id is not None]


def test_the_facilitator_requests_a_meeting_and_its_run_starts(
        http: TestClient, started: list[int]) -> None:
    sign_in(http, "faci.user", "faci-pass-1")
    child = f"Cara Requestpage{utc_now().timestamp():.0f}"

    def post(**data: str) -> httpx.Response:
        page = http.get("/meetings/new")
        assert page.status_code == 200 and "The professionals invited" in page.text
        data["csrf_token"] = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        response: httpx.Response = http.post("/meetings/new", data=data,
                                             follow_redirects=False)
        return response

    bad_email = post(**request_data(child, invitee_email_2="not-an-email"))
    assert bad_email.status_code == 400
    assert "The invitee&#39;s email must be an email address" in bad_email.text
    assert child in bad_email.text  # the form comes back as typed
    no_one = post(**{k: v for k, v in request_data(child).items()
                     if not k.startswith("invitee_")})
    assert no_one.status_code == 400 and "Invite at least one" in no_one.text
    no_date = post(**request_data(child, child_date_of_birth=""))
    assert no_date.status_code == 400 and "date of birth" in no_date.text
    assert meetings_of(child) == [] and started == []  # nothing stored, nothing started

    taken = post(**request_data(child))
    assert taken.status_code == 303
    (meeting_id,) = meetings_of(child)
    assert taken.headers["location"] == f"/meetings/{meeting_id}"
    assert started == [meeting_id]
    with session_scope() as session:
        meeting = rules.get_meeting(session, meeting_id)
        people = rules.invitees(session, meeting_id)
    assert meeting.state is MeetingState.REQUESTED and meeting.family_names == "Gwen Parentname"
    assert [(p.email, p.agency, p.role, p.manager_email) for p in people] == [
        ("ola@council.example", "Children's Social Care", "Social worker", "tm@council.example"),
        ("ben@nhs.example", "Health visiting", "Health visitor", "")]


def test_people_without_the_role_cannot_request_a_meeting(http: TestClient) -> None:
    sign_in(http, "rev.user", "rev-pass-1")
    assert http.get("/meetings/new").status_code == 403
