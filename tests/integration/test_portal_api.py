"""The portal against the real case DB: the JSON API, the referral form, the officer's account
link, case pages, sign-in and roles, the outbox.

Prefect is not started here. The issue allows Prefect to be absent for these API tests, so the
portal's own references to the Prefect calls (`portal.actions.start_case_flow`, `wake_case`,
`wake_flow_run`, `stop_flow_run`) are replaced by a recorder; nothing in the domain is stubbed.
The browser tests in tests/e2e drive the same portal against a real Prefect server and worker.
"""

from __future__ import annotations

import logging
import re
import smtplib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import delete, func, select

from infra.db import session_scope
from infra.mailsink import MailSink
from infra.settings import get_settings, reset_settings
from models import (
    Account,
    AuditEvent,
    Case,
    Deadline,
    Officer,
    Outbox,
    PortalSession,
    SignInFailure,
)
from models.enums import CaseState, DeadlineKind, EmploymentStatus, OutboxStatus
from models.forms import (
    DiscussionChoice,
    FactFindingChoice,
)
from portal import account_code, actions
from portal.app import create_app
from rprp.samples import referral_data
from tasks.calendar import england_and_wales
from tasks.casework import advance, apply_answer, record_account, wait_for
from tasks.links import account_token, flow_run_link
from tests.support.cases import REVIEWER, through_gateway
from tests.support.users import use_sign_ins

S = CaseState
PSD_AUTH = ("psd.user", "psd-pass-1")
REVIEWER_AUTH = (REVIEWER, "rev-pass-1")  # the sample referral's reviewer
USERS = f"psd.user:psd-pass-1:psd,{REVIEWER}:rev-pass-1:reviewer"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# -- fixtures ----------------------------------------------------------------------------------

class PrefectRecorder:
    """Stands in for the portal's calls to Prefect, recording what would have crossed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.reachable = True
        self.wakeable = True

    def _check(self) -> None:
        if not self.reachable:
            raise ConnectionError("Prefect is unreachable")

    async def start_case_flow(self, case_id: int) -> str:
        self.calls.append(("start", (case_id,)))
        self._check()
        run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"rprp-case-{case_id}"))
        with session_scope() as session:  # what the real call records on the case
            case = session.get(Case, case_id)
            assert case is not None
            case.flow_run_id = run_id
            session.add(case)
        return run_id

    async def wake_case(self, case_id: int, attempts: int = 5) -> bool:
        self.calls.append(("wake_case", (case_id,)))
        self._check()
        return True

    async def wake_flow_run(self, flow_run_id: str, attempts: int = 5,
                            delay: float = 1.0) -> bool:
        self.calls.append(("wake_flow_run", (flow_run_id,)))
        self._check()
        return self.wakeable

    async def stop_flow_run(self, flow_run_id: str | None, message: str) -> None:
        self.calls.append(("stop", (flow_run_id, message)))
        self._check()

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def prefect(monkeypatch: pytest.MonkeyPatch) -> PrefectRecorder:
    recorder = PrefectRecorder()
    for name in ("start_case_flow", "wake_case", "wake_flow_run", "stop_flow_run"):
        monkeypatch.setattr(actions, name, getattr(recorder, name))
    return recorder


@pytest.fixture
def app_client(prefect: PrefectRecorder, monkeypatch: pytest.MonkeyPatch,
               tmp_path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RPRP_PORTAL_USERS", USERS)
    reset_settings()
    use_sign_ins(USERS)
    with session_scope() as session:  # each test starts unthrottled and signed out
        session.exec(delete(SignInFailure))
        session.exec(delete(PortalSession))
    with TestClient(create_app(mail_dir=tmp_path / "mail")) as client:
        yield client
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """Signed out; API calls pass `auth=`."""
    return app_client


def sign_in(client: TestClient, user: tuple[str, str]) -> TestClient:
    page = client.get("/login")
    response = client.post("/login", data={"username": user[0], "password": user[1],
                                           "csrf_token": csrf(page.text), "next": "/cases"},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def psd(client: TestClient) -> TestClient:
    return sign_in(client, PSD_AUTH)


@pytest.fixture
def reviewer(client: TestClient) -> TestClient:
    return sign_in(client, REVIEWER_AUTH)


def csrf(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has a CSRF token"
    return match.group(1)


def form_token_of(html: str) -> str:
    match = re.search(r'name="form_token" value="([^"]+)"', html)
    assert match, "the form has a one-time token"
    return match.group(1)


def case_count() -> int:
    with session_scope() as session:
        return int(session.exec(select(func.count()).select_from(Case)).one())


def referral_json(**overrides: Any) -> dict[str, Any]:
    """The sample referral as the API's JSON body (rprp.samples merges the overrides, valid or
    not, so a test can send a wrong one)."""
    return referral_data(**overrides)


def refer(client: TestClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/referrals", json=referral_json(**overrides), auth=PSD_AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def serve_notice(case_id: int) -> None:
    """What the case's flow run does first: serve the notice (the real domain step)."""
    state, _ = advance(case_id)
    assert state is S.AWAITING_ACCOUNT


def link_token(case_id: int, expires_in: timedelta = timedelta(days=30),
               notice_round: int = 1) -> str:
    return account_token(case_id, notice_round, datetime.now(UTC) + expires_in)


def to_discussion(case_id: int) -> None:
    """Account given, reviewer decides no fact-finding: the case moves past the account stage."""
    record_account(case_id, 1, "My account of the stop, in enough words.")
    advance(case_id)
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        wait = wait_for(case)
    assert wait is not None
    apply_answer(case_id, wait.key, through_gateway(
        case_id, wait, {"choice": FactFindingChoice.NO_FACT_FINDING.value}))
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None and case.state is S.DISCUSSION_SCHEDULING


# -- every validation rule of ReferralIn: 422, the field path, nothing stored ----------------

TODAY = date.today()
LONG = "x" * 20001
RULES: list[tuple[str, dict[str, Any], str]] = [
    ("route-missing", {"route": None}, "route"),
    ("route-unknown", {"route": "informal_chat"}, "route"),
    ("origin-unknown", {"origin": "rumour"}, "origin"),
    ("incident-date-invalid", {"incident_on": "2025-02-30"}, "incident_on"),
    ("reported-date-missing", {"concern_reported_on": None}, "concern_reported_on"),
    ("referred-date-invalid", {"referred_on": "yesterday"}, "referred_on"),
    ("allegation-category-too-short", {"allegation_category": "x"}, "allegation_category"),
    ("allegation-category-too-long", {"allegation_category": "x" * 201}, "allegation_category"),
    ("rprp-reason-too-short", {"rprp_reason": "rude"}, "rprp_reason"),
    ("rprp-reason-too-long", {"rprp_reason": "x" * 501}, "rprp_reason"),
    ("behaviour-summary-too-short", {"behaviour_summary": "Too short"}, "behaviour_summary"),
    ("behaviour-summary-too-long", {"behaviour_summary": "x" * 10001}, "behaviour_summary"),
    ("public-summary-too-short", {"public_summary": "Short"}, "public_summary"),
    ("public-summary-too-long", {"public_summary": "x" * 2001}, "public_summary"),
    ("sexual-conduct-not-boolean", {"sexual_conduct": "perhaps"}, "sexual_conduct"),
    ("decision-maker-too-short", {"aa_decision_maker": "D"}, "aa_decision_maker"),
    ("decision-maker-role-too-long", {"aa_decision_maker_role": "x" * 201},
     "aa_decision_maker_role"),
    ("officer-missing", {"officer": None}, "officer"),
    ("officer-collar-missing", {"officer": {"collar_number": ""}}, "officer.collar_number"),
    ("officer-collar-too-long", {"officer": {"collar_number": "A" * 21}},
     "officer.collar_number"),
    ("officer-collar-bad-characters", {"officer": {"collar_number": "PC 12/3"}},
     "officer.collar_number"),
    ("officer-name-too-short", {"officer": {"name": "A"}}, "officer.name"),
    ("officer-email-malformed", {"officer": {"email": "not-an-email"}}, "officer.email"),
    ("officer-email-too-long", {"officer": {"email": "a" * 250 + "@x.uk"}}, "officer.email"),
    ("officer-rank-unknown", {"officer": {"rank": "admiral"}}, "officer.rank"),
    ("officer-probationer-not-boolean", {"officer": {"probationer": "sometimes"}},
     "officer.probationer"),
    ("officer-special-not-boolean", {"officer": {"special_constable": "maybe"}},
     "officer.special_constable"),
    ("officer-unit-too-long", {"officer": {"unit": "x" * 201}}, "officer.unit"),
    ("reviewer-missing", {"reviewer": None}, "reviewer"),
    ("reviewer-name-too-short", {"reviewer": {"name": "B"}}, "reviewer.name"),
    ("reviewer-email-malformed", {"reviewer": {"email": "reviewer at force"}},
     "reviewer.email"),
    ("reviewer-rank-too-long", {"reviewer": {"rank_or_grade": "x" * 101}},
     "reviewer.rank_or_grade"),
    ("reviewer-basis-unknown", {"reviewer": {"basis": "friend"}}, "reviewer.basis"),
    ("reviewer-opinion-too-long", {"reviewer": {"aa_opinion": "x" * 1001}},
     "reviewer.aa_opinion"),
    ("staff-reviewer-needs-opinion", {"reviewer": {"basis": "senior_staff", "aa_opinion": ""}},
     "reviewer.aa_opinion"),
    ("complainant-name-too-short",
     {"complainant": {"name": "C", "email": "c@example.org"}}, "complainant.name"),
    ("complainant-email-malformed",
     {"complainant": {"name": "Jo Public", "email": "jo.public"}}, "complainant.email"),
    ("complainant-address-too-long",
     {"complainant": {"name": "Jo Public", "address": "x" * 501}}, "complainant.address"),
    ("complainant-review-body-unknown",
     {"complainant": {"name": "Jo Public", "email": "jo@example.org", "review_body": "court"}},
     "complainant.review_body"),
    ("complainant-unreachable", {"complainant": {"name": "Jo Public"}}, "complainant.email"),
    ("monitoring-ethnicity-too-long", {"monitoring": {"ethnicity": "x" * 61}},
     "monitoring.ethnicity"),
    ("monitoring-sex-too-long", {"monitoring": {"sex": "x" * 31}}, "monitoring.sex"),
    ("monitoring-age-band-too-long", {"monitoring": {"age_band": "x" * 31}},
     "monitoring.age_band"),
    ("monitoring-disability-too-long", {"monitoring": {"disability": "x" * 31}},
     "monitoring.disability"),
    ("monitoring-religion-too-long", {"monitoring": {"religion": "x" * 61}},
     "monitoring.religion"),
    ("monitoring-orientation-too-long", {"monitoring": {"sexual_orientation": "x" * 61}},
     "monitoring.sexual_orientation"),
    ("referral-date-in-future", {"referred_on": (TODAY + timedelta(days=1)).isoformat(),
                                 "concern_reported_on": TODAY.isoformat(),
                                 "incident_on": TODAY.isoformat()}, "referred_on"),
    ("incident-after-report", {"incident_on": (TODAY - timedelta(days=2)).isoformat(),
                               "concern_reported_on": (TODAY - timedelta(days=3)).isoformat(),
                               "referred_on": TODAY.isoformat()}, "incident_on"),
    ("report-after-referral", {"incident_on": (TODAY - timedelta(days=9)).isoformat(),
                               "concern_reported_on": (TODAY - timedelta(days=2)).isoformat(),
                               "referred_on": (TODAY - timedelta(days=3)).isoformat()},
     "concern_reported_on"),
    ("reported-before-part-6", {"incident_on": "2020-01-10", "concern_reported_on": "2020-01-31",
                                "referred_on": "2020-03-01"}, "concern_reported_on"),
    ("public-complaint-needs-complainant", {"origin": "public_complaint", "complainant": None},
     "complainant"),
    ("reviewer-is-the-officer", {"reviewer": {"email": "same.person@force.example"},
                                 "officer": {"email": "same.person@force.example"}},
     "reviewer.email"),
]


@pytest.mark.parametrize(("overrides", "field"), [(o, f) for _, o, f in RULES],
                         ids=[name for name, _, _ in RULES])
def test_each_referral_rule_is_a_422_naming_the_field(client: TestClient, prefect,
                                                      overrides: dict[str, Any],
                                                      field: str) -> None:
    body = referral_json(**overrides)
    for key, value in overrides.items():  # None means: leave the field out
        if value is None:
            body.pop(key, None)
    before = case_count()
    response = client.post("/api/referrals", json=body, auth=PSD_AUTH)
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["detail"]]
    assert field in fields, fields
    error = next(e for e in response.json()["detail"] if e["field"] == field)
    assert error["loc"] == ["body", *field.split(".")]
    assert error["msg"]
    assert case_count() == before
    assert prefect.calls == []


def test_a_malformed_body_is_a_422(client: TestClient) -> None:
    response = client.post("/api/referrals", content=b"{not json", auth=PSD_AUTH,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422


# -- the referral API --------------------------------------------------------------------------

def test_a_valid_referral_creates_the_case_then_starts_its_flow_run(client, prefect) -> None:
    before = case_count()
    created = refer(client)
    assert case_count() == before + 1
    assert created["reference"] == f"RPRP-{created['case_id']:06d}"
    assert created["state"] == "referral_received"
    assert created["flow_run_id"]
    assert prefect.calls == [("start", (created["case_id"],))]
    with session_scope() as session:
        case = session.get(Case, created["case_id"])
        assert case is not None and case.flow_run_id == created["flow_run_id"]
        event = session.exec(select(AuditEvent).where(AuditEvent.case_id == case.id)).first()
        assert event is not None and event.actor == PSD_AUTH[0]


def test_the_same_idempotency_key_twice_makes_one_case(client, prefect) -> None:
    body = referral_json()
    key = f"psd-system-{uuid.uuid4()}"
    before = case_count()
    first = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                        headers={"Idempotency-Key": key})
    second = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                         headers={"Idempotency-Key": key})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["case_id"] == second.json()["case_id"]
    assert first.json()["flow_run_id"] == second.json()["flow_run_id"]
    assert case_count() == before + 1
    assert prefect.names() == ["start"]  # the repeat finds the run already started


def test_the_same_content_without_a_key_makes_one_case(client, prefect) -> None:
    body = referral_json()
    before = case_count()
    first = client.post("/api/referrals", json=body, auth=PSD_AUTH)
    second = client.post("/api/referrals", json=body, auth=PSD_AUTH)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["case_id"] == second.json()["case_id"]
    assert case_count() == before + 1


def test_an_overlong_idempotency_key_is_refused(client, prefect) -> None:
    response = client.post("/api/referrals", json=referral_json(), auth=PSD_AUTH,
                           headers={"Idempotency-Key": "k" * 97})
    assert response.status_code == 422


def test_prefect_unreachable_keeps_the_referral_and_a_retry_starts_it(client, prefect) -> None:
    prefect.reachable = False
    key = f"retry-{uuid.uuid4()}"
    body = referral_json()
    first = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                        headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert first.json()["flow_run_id"] is None
    case_id = first.json()["case_id"]
    assert actions.load_case(case_id).flow_run_id is None

    prefect.reachable = True
    again = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                        headers={"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.json()["case_id"] == case_id
    assert again.json()["flow_run_id"]
    assert prefect.names() == ["start", "start"]


ASYNC = {"Prefer": "respond-async"}


def run_id_appears(client: TestClient, case_id: int, ceiling: float = 30.0) -> str:
    """Poll the case as a client would, until its flow run id appears (or the ceiling)."""
    deadline = time.monotonic() + ceiling
    while True:
        body = client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).json()
        if body["flow_run_id"]:
            return str(body["flow_run_id"])
        assert time.monotonic() < deadline, f"no flow run for case {case_id}: {body}"
        time.sleep(0.05)


def test_respond_async_answers_once_the_case_is_stored_and_the_run_id_appears(
        client, prefect) -> None:
    before = case_count()
    response = client.post("/api/referrals", json=referral_json(), auth=PSD_AUTH,
                           headers=ASYNC | {"Idempotency-Key": f"async-{uuid.uuid4()}"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert case_count() == before + 1
    assert response.headers["Preference-Applied"] == "respond-async"
    assert response.headers["Location"] == f"/api/referrals/{body['case_id']}"
    assert body["status_url"] == response.headers["Location"]
    assert body["state"] == "referral_received"
    run_id = run_id_appears(client, body["case_id"])
    assert actions.load_case(body["case_id"]).flow_run_id == run_id
    assert prefect.calls.count(("start", (body["case_id"],))) == 1


def test_respond_async_with_prefect_down_starts_the_run_when_prefect_answers(
        client, prefect) -> None:
    prefect.reachable = False
    key = f"async-down-{uuid.uuid4()}"
    body = referral_json()
    first = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                        headers=ASYNC | {"Idempotency-Key": key})
    assert first.status_code == 202
    case_id = first.json()["case_id"]
    # The background start keeps trying; meanwhile the case is stored, with no run.
    deadline = time.monotonic() + 10
    while prefect.names().count("start") < 2:
        assert time.monotonic() < deadline, prefect.calls
        time.sleep(0.05)
    assert actions.load_case(case_id).flow_run_id is None
    # A repeat of the request while it tries: the same case, no second background start.
    again = client.post("/api/referrals", json=body, auth=PSD_AUTH,
                        headers=ASYNC | {"Idempotency-Key": key})
    assert (again.status_code, again.json()["case_id"]) == (200, case_id)
    prefect.reachable = True
    run_id_appears(client, case_id)
    assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).json()["flow_run_id"]


def test_asking_for_a_case_left_without_its_run_starts_it(client, prefect) -> None:
    """The portal stopped before the background start: the next GET starts the run."""
    prefect.reachable = False
    created = client.post("/api/referrals", json=referral_json(), auth=PSD_AUTH).json()
    assert created["flow_run_id"] is None
    prefect.reachable = True
    run_id_appears(client, created["case_id"])


def test_a_prefer_header_without_respond_async_changes_nothing(client, prefect) -> None:
    response = client.post("/api/referrals", json=referral_json(), auth=PSD_AUTH,
                           headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.json()["flow_run_id"]
    assert "Preference-Applied" not in response.headers


def test_get_referral_shows_state_deadlines_decision_and_audit(client, prefect) -> None:
    case_id = refer(client)["case_id"]
    serve_notice(case_id)
    body = client.get(f"/api/referrals/{case_id}", auth=REVIEWER_AUTH).json()
    assert body["state"] == "awaiting_account"
    assert body["pending_decision"] is None  # waiting for the officer, not for a decision
    assert body["waiting_for"]["kind"] == "wake"
    [deadline] = body["deadlines"]
    assert deadline["kind"] == "account" and deadline["status"] == "open"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", deadline["due_at"])
    assert deadline["calendar_version"]
    assert [e["action"] for e in body["audit"]] == ["referral_received", "notice_served"]

    record_account(case_id, 1, "An account long enough to be accepted.")
    advance(case_id)
    body = client.get(f"/api/referrals/{case_id}", auth=REVIEWER_AUTH).json()
    assert body["state"] == "fact_finding_decision"
    decision = body["pending_decision"]
    assert decision["title"] == "Fact-finding decision"
    assert decision["prefect_url"] == flow_run_link(body["flow_run_id"])
    assert decision["prefect_url"].endswith(f"/runs/flow-run/{body['flow_run_id']}")
    assert body["accounts"][0]["late"] is False
    assert "text" not in body["accounts"][0]
    assert "An account long enough" not in str(body)


def test_get_an_unknown_referral_is_404(client) -> None:
    response = client.get("/api/referrals/99999999", auth=PSD_AUTH)
    assert response.status_code == 404


# -- API sign-in and roles ----------------------------------------------------------------------

def test_the_api_needs_credentials(client, prefect) -> None:
    before = case_count()
    assert client.post("/api/referrals", json=referral_json()).status_code == 401
    response = client.post("/api/referrals", json=referral_json(),
                           auth=(PSD_AUTH[0], "wrong-password"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/api/referrals/1").status_code == 401
    assert case_count() == before


def test_only_psd_may_refer_through_the_api(client, prefect) -> None:
    before = case_count()
    response = client.post("/api/referrals", json=referral_json(), auth=REVIEWER_AUTH)
    assert response.status_code == 403
    assert case_count() == before


def test_officer_left_discontinues_the_case_and_ends_its_run(client, prefect) -> None:
    created = refer(client)
    case_id = created["case_id"]
    serve_notice(case_id)
    left_on = (TODAY - timedelta(days=1)).isoformat()
    assert client.post(f"/api/cases/{case_id}/officer-left", json={"left_on": left_on},
                       auth=REVIEWER_AUTH).status_code == 403
    response = client.post(f"/api/cases/{case_id}/officer-left", json={"left_on": left_on},
                           auth=PSD_AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "discontinued"
    assert response.json()["flow_run"] == "woken"
    assert ("wake_flow_run", (created["flow_run_id"],)) in prefect.calls
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        officer = session.get(Officer, case.officer_id)
        assert officer is not None
        assert officer.employment_status is EmploymentStatus.LEFT
        assert officer.left_on == TODAY - timedelta(days=1)
    # A closed case stays closed.
    again = client.post(f"/api/cases/{case_id}/cancel", json={"reason": "Withdrawn"},
                        auth=PSD_AUTH)
    assert again.status_code == 409


def test_a_run_waiting_for_a_form_is_stopped_when_the_case_closes(client, prefect) -> None:
    created = refer(client)
    prefect.wakeable = False  # paused for a person's form: it is not woken
    response = client.post(f"/api/cases/{created['case_id']}/cancel",
                           json={"reason": "Withdrawn by the appropriate authority"},
                           auth=PSD_AUTH)
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["flow_run"] == "stopped"
    assert prefect.names()[-1] == "stop"


def test_officer_left_in_the_future_or_unknown_case_is_refused(client, prefect) -> None:
    case_id = refer(client)["case_id"]
    future = (TODAY + timedelta(days=3)).isoformat()
    response = client.post(f"/api/cases/{case_id}/officer-left", json={"left_on": future},
                           auth=PSD_AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "left_on"
    assert actions.load_case(case_id).state is S.REFERRAL_RECEIVED
    response = client.post("/api/cases/99999999/officer-left",
                           json={"left_on": TODAY.isoformat()}, auth=PSD_AUTH)
    assert response.status_code == 404


def test_cancel_needs_a_reason_and_psd(client, prefect) -> None:
    case_id = refer(client)["case_id"]
    response = client.post(f"/api/cases/{case_id}/cancel", json={"reason": ""}, auth=PSD_AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "reason"
    assert client.post(f"/api/cases/{case_id}/cancel", json={"reason": "Withdrawn"},
                       auth=REVIEWER_AUTH).status_code == 403
    assert actions.load_case(case_id).state is S.REFERRAL_RECEIVED


def test_openapi_and_health_are_served(client) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/api/referrals", "/api/referrals/{case_id}", "/api/cases/{case_id}/officer-left",
            "/api/cases/{case_id}/cancel"} <= set(schema["paths"])
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


# -- the officer's account link ------------------------------------------------------------------

@pytest.fixture
def served_case(client: TestClient, prefect) -> int:
    case_id = refer(client)["case_id"]
    serve_notice(case_id)
    return case_id


def accounts_of(case_id: int) -> list[Account]:
    with session_scope() as session:
        return list(session.exec(select(Account).where(Account.case_id == case_id)))


def code_for(case_id: int, notice_round: int = 1) -> str:
    """A one-time code as the officer's email would bring it (the real issuing step)."""
    return account_code.issue(case_id, notice_round)


def test_a_valid_link_shows_the_notice_and_takes_the_account(client, prefect, served_case,
                                                              caplog) -> None:
    token = link_token(served_case)
    page = client.get(f"/account/{token}")
    assert page.status_code == 200
    reference = f"RPRP-{served_case:06d}"
    assert reference in page.text
    assert "optional" in page.text and "Federation" in page.text
    assert "not a disciplinary finding" in page.text
    assert "<textarea" in page.text
    assert "rprp_session" not in page.headers.get("set-cookie", "")  # officers get no session
    assert page.headers["Referrer-Policy"] == "no-referrer"

    marker = f"ACCOUNT-MARKER-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    response = client.post(f"/account/{token}", data={"account": f"What happened: {marker}.",
                                                      "code": code_for(served_case)},
                           follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/account/{token}/received"
    confirmation = client.get(response.headers["location"])
    assert "Account received" in confirmation.text and reference in confirmation.text
    assert "after the deadline" not in confirmation.text

    [account] = accounts_of(served_case)
    assert marker in account.text and account.late is False
    assert actions.load_case(served_case).state is S.ACCOUNT_RECEIVED
    assert prefect.calls[-1] == ("wake_case", (served_case,))
    assert all(marker not in repr(args) for _, args in prefect.calls)  # nothing to Prefect
    assert all(marker not in record.getMessage() for record in caplog.records)  # nor logged


def test_a_late_account_is_taken_and_flagged(client, prefect, served_case) -> None:
    with session_scope() as session:
        deadline = session.exec(select(Deadline).where(
            Deadline.case_id == served_case, Deadline.kind == DeadlineKind.ACCOUNT)).one()
        deadline.due_at = datetime.now(UTC) - timedelta(hours=1)
        session.add(deadline)
    token = link_token(served_case)
    response = client.post(f"/account/{token}", data={"account": "Sorry this is late: ...",
                                                      "code": code_for(served_case)})
    assert response.status_code == 200
    assert "Account received" in response.text
    assert "arrived after the deadline" in response.text
    [account] = accounts_of(served_case)
    assert account.late is True


def test_an_empty_or_short_account_is_refused_with_a_message(client, prefect,
                                                             served_case) -> None:
    token = link_token(served_case)
    empty = client.post(f"/account/{token}", data={"account": "   "})
    assert empty.status_code == 422
    assert 'href="#account"' in empty.text and "Enter your account" in empty.text
    short = client.post(f"/account/{token}", data={"account": "Too short",
                                                   "code": code_for(served_case)})
    assert short.status_code == 422
    assert "at least 10 characters" in short.text
    assert accounts_of(served_case) == []
    assert prefect.calls == [("start", (served_case,))]


def test_a_failed_wake_flags_the_case_for_the_sweep(client, prefect, served_case) -> None:
    prefect.reachable = False
    token = link_token(served_case)
    response = client.post(f"/account/{token}", data={"account": "My account of the stop.",
                                                      "code": code_for(served_case)})
    assert response.status_code == 200 and "Account received" in response.text
    assert actions.load_case(served_case).wake_requested is True


def _refused(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 403
    assert "This link cannot be used" in response.text
    assert "RPRP-" not in response.text
    assert "<textarea" not in response.text


def test_a_tampered_link_is_refused_and_shows_nothing(client, prefect, served_case) -> None:
    token = link_token(served_case)
    payload, signature = token.rsplit(".", 1)
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    _refused(client.get(f"/account/{payload}.{flipped}"))
    _refused(client.get(f"/account/{token[:-6]}"))
    _refused(client.get("/account/not-a-token"))
    _refused(client.post(f"/account/{payload}.{flipped}",
                         data={"account": "An account through a forged link."}))
    assert accounts_of(served_case) == []


def test_an_expired_link_is_refused(client, prefect, served_case) -> None:
    token = link_token(served_case, expires_in=timedelta(seconds=-1))
    _refused(client.get(f"/account/{token}"))
    _refused(client.post(f"/account/{token}", data={"account": "An account, too late."}))
    assert accounts_of(served_case) == []


def test_a_link_opens_only_its_own_case(client, prefect, served_case) -> None:
    other = refer(client)["case_id"]
    serve_notice(other)
    # A link signed for the other case writes to the other case only.
    response = client.post(f"/account/{link_token(other)}",
                           data={"account": "The account for the other case.",
                                 "code": code_for(other)})
    assert f"RPRP-{other:06d}" in response.text
    assert f"RPRP-{served_case:06d}" not in response.text
    assert accounts_of(served_case) == [] and len(accounts_of(other)) == 1
    # The payload of one case's link cannot be re-pointed at another case.
    token = link_token(served_case)
    forged = link_token(other).split(".")[0] + "." + token.split(".")[1]
    _refused(client.get(f"/account/{forged}"))
    # A correctly signed link for a case that does not exist, or a later notice round.
    _refused(client.get(f"/account/{link_token(99999999)}"))
    _refused(client.get(f"/account/{link_token(served_case, notice_round=2)}"))
    # A link signed with another key.
    from itsdangerous import URLSafeSerializer

    from tasks.links import ACCOUNT_SALT

    foreign = URLSafeSerializer("another-key", salt=ACCOUNT_SALT).dumps(
        {"c": served_case, "r": 1, "e": int((datetime.now(UTC) + timedelta(days=1)).timestamp())})
    _refused(client.get(f"/account/{foreign}"))


def test_after_the_account_stage_the_link_says_so_and_has_no_form(client, prefect,
                                                                   served_case) -> None:
    to_discussion(served_case)
    token = link_token(served_case)
    page = client.get(f"/account/{token}")
    assert page.status_code == 200
    assert "moved past the account stage" in page.text
    assert "<textarea" not in page.text
    response = client.post(f"/account/{token}", data={"account": "Another account, later on."})
    assert response.status_code == 409
    assert "moved past the account stage" in response.text
    assert len(accounts_of(served_case)) == 1


def test_a_closed_case_takes_no_account(client, prefect, served_case) -> None:
    client.post(f"/api/cases/{served_case}/cancel", json={"reason": "Withdrawn"}, auth=PSD_AUTH)
    page = client.get(f"/account/{link_token(served_case)}")
    assert "moved past the account stage" in page.text and "<textarea" not in page.text


# -- pages: sign-in, roles, the form, the case page ------------------------------------------

@pytest.mark.parametrize("path", ["/", "/cases", "/cases/1", "/referrals/new", "/outbox",
                                  "/cases/1/officer-left", "/cases/1/cancel"])
def test_pages_need_sign_in(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def test_a_wrong_password_does_not_sign_in(client: TestClient) -> None:
    page = client.get("/login")
    response = client.post("/login", data={"username": PSD_AUTH[0], "password": "nope",
                                           "csrf_token": csrf(page.text)})
    assert response.status_code == 401
    assert 'href="#username"' in response.text
    assert client.get("/cases", follow_redirects=False).status_code == 303


def test_sign_in_needs_the_csrf_token(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"username": PSD_AUTH[0], "password": PSD_AUTH[1]})
    assert response.status_code == 403


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client: TestClient) -> None:
    page = client.get("/login?next=//evil.example/x")
    assert 'name="next" value="/cases"' in page.text
    response = client.post("/login", data={"username": PSD_AUTH[0], "password": PSD_AUTH[1],
                                           "csrf_token": csrf(page.text),
                                           "next": "/referrals/new"}, follow_redirects=False)
    assert response.headers["location"] == "/referrals/new"


def test_reviewers_see_cases_but_cannot_refer_or_close(reviewer: TestClient, prefect) -> None:
    case_id = refer(reviewer)["case_id"]
    assert reviewer.get("/cases").status_code == 200
    page = reviewer.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "The officer has left the force" not in page.text
    assert reviewer.get("/referrals/new").status_code == 403
    token = csrf(page.text)
    for path in (f"/cases/{case_id}/officer-left", f"/cases/{case_id}/cancel"):
        assert reviewer.get(path).status_code == 403
        response = reviewer.post(path, data={"csrf_token": token, "reason": "No",
                                             "left_on-day": "1", "left_on-month": "1",
                                             "left_on-year": "2025"})
        assert response.status_code == 403
    assert reviewer.post(f"/cases/{case_id}/start",
                         data={"csrf_token": token}).status_code == 403
    assert reviewer.post("/referrals/new", data={"csrf_token": token}).status_code == 403
    assert actions.load_case(case_id).state is S.REFERRAL_RECEIVED


def form_data(referral: dict[str, Any], token: str, form_token: str) -> dict[str, str]:
    """The referral form as a browser posts it."""
    data = {"csrf_token": token, "form_token": form_token, "complainant": "no"}
    for key, value in referral.items():
        if key in ("officer", "reviewer", "monitoring", "complainant"):
            if isinstance(value, dict):
                for inner, inner_value in value.items():
                    if isinstance(inner_value, bool):
                        inner_value = "yes" if inner_value else "no"
                    data[f"{key}.{inner}"] = "" if inner_value is None else str(inner_value)
                if key == "complainant":
                    data["complainant"] = "yes"
        elif key.endswith("_on"):
            day = date.fromisoformat(value)
            data.update({f"{key}-day": str(day.day), f"{key}-month": str(day.month),
                         f"{key}-year": str(day.year)})
        elif isinstance(value, bool):
            data[key] = "yes" if value else "no"
        else:
            data[key] = str(value)
    return data


def test_the_form_shows_errors_by_field_and_stores_nothing(psd: TestClient, prefect) -> None:
    page = psd.get("/referrals/new")
    assert page.status_code == 200
    form_token = form_token_of(page.text)
    data = form_data(referral_json(), csrf(page.text), form_token)
    data.update({"officer.email": "not-an-email", "referred_on-day": "31",
                 "referred_on-month": "2", "public_summary": "", "officer.rank": ""})
    before = case_count()
    response = psd.post("/referrals/new", data=data)
    assert response.status_code == 422
    assert response.text.count('class="govuk-error-summary"') == 1
    summary = re.findall(r'<li><a href="#([^"]+)">', response.text)
    assert summary == ["referred-on-day", "public-summary", "officer-email", "officer-rank"]
    for field_id in ("referred-on", "public-summary", "officer-email", "officer-rank"):
        assert f'id="{field_id}-error"' in response.text
    message = "The date of the referral must be a real date"
    assert f'<a href="#referred-on-day">{message}</a>' in response.text  # in the summary
    assert message in response.text[response.text.index('id="referred-on-error"'):]  # the field
    assert "<title>Error:" in response.text
    assert case_count() == before and prefect.calls == []


@pytest.mark.parametrize(("overrides", "form_changes", "anchor", "message"), [
    ({"origin": "public_complaint"}, {"complainant": "no"}, "complainant",
     "A public complaint needs the complainant"),
    ({}, {"reviewer.basis": "senior_staff", "reviewer.aa_opinion": ""}, "reviewer-aa-opinion",
     "A staff reviewer needs the appropriate authority"),
    ({"incident_on": (TODAY - timedelta(days=2)).isoformat(),
      "concern_reported_on": (TODAY - timedelta(days=5)).isoformat()}, {}, "incident-on-day",
     "The incident date must be on or before"),
    ({}, {"complainant": "yes", "complainant.name": "Jo Public"}, "complainant-email",
     "Give the complainant"),
], ids=["public-complaint", "staff-reviewer", "date-order", "complainant-unreachable"])
def test_the_form_points_cross_field_rules_at_their_field(psd: TestClient, prefect,
                                                          overrides: dict[str, Any],
                                                          form_changes: dict[str, str],
                                                          anchor: str, message: str) -> None:
    page = psd.get("/referrals/new")
    data = form_data(referral_json(**overrides), csrf(page.text), f"t-{uuid.uuid4().hex}")
    data.update(form_changes)
    before = case_count()
    response = psd.post("/referrals/new", data=data)
    assert response.status_code == 422
    summary = re.findall(r'<li><a href="#([^"]+)">([^<]+)</a>', response.text)
    assert [a for a, _ in summary] == [anchor]
    assert summary[0][1].replace("&#39;", "'").startswith(message)
    field_id = anchor.removesuffix("-day")
    assert f'id="{field_id}-error"' in response.text
    assert case_count() == before


def test_the_form_creates_one_case_even_when_submitted_twice(psd: TestClient, prefect) -> None:
    page = psd.get("/referrals/new")
    form_token = form_token_of(page.text)
    referral = referral_json(complainant={"name": "Jo Public", "email": "jo@example.org",
                                          "address": "", "review_body": "iopc"},
                             origin="public_complaint")
    data = form_data(referral, csrf(page.text), form_token)
    before = case_count()
    first = psd.post("/referrals/new", data=data, follow_redirects=False)
    assert first.status_code == 303
    location = first.headers["location"]
    assert re.fullmatch(r"/cases/\d+", location)
    second = psd.post("/referrals/new", data=data, follow_redirects=False)
    assert second.headers["location"] == location
    assert case_count() == before + 1
    assert prefect.names() == ["start"]
    case_page = psd.get(location)
    assert "already submitted" in case_page.text
    case = actions.load_case(int(location.rsplit("/", 1)[1]))
    assert case.complainant_name == "Jo Public" and case.complainant_review_body == "iopc"


def test_the_form_needs_the_csrf_token(psd: TestClient, prefect) -> None:
    before = case_count()
    data = form_data(referral_json(), "forged", "t-csrf")
    assert psd.post("/referrals/new", data=data).status_code == 403
    assert case_count() == before


def test_unreachable_prefect_keeps_the_case_and_offers_start(psd: TestClient, prefect) -> None:
    prefect.reachable = False
    page = psd.get("/referrals/new")
    data = form_data(referral_json(), csrf(page.text), f"t-{uuid.uuid4().hex}")
    response = psd.post("/referrals/new", data=data)
    assert response.status_code == 200
    assert "flow run is not started yet" in response.text
    assert ">Start</button>" in response.text
    case_id = int(str(response.url).rsplit("/", 1)[1])
    assert actions.load_case(case_id).state is S.REFERRAL_RECEIVED

    prefect.reachable = True
    started = psd.post(f"/cases/{case_id}/start", data={"csrf_token": csrf(response.text)})
    assert "The flow run has started" in started.text
    assert "not started yet" not in started.text
    assert actions.load_case(case_id).flow_run_id


def test_the_case_page_shows_deadlines_decision_account_and_audit(psd: TestClient,
                                                                   prefect) -> None:
    created = refer(psd)
    case_id = created["case_id"]
    serve_notice(case_id)
    record_account(case_id, 1, "SECRET-ACCOUNT-TEXT of what happened.")
    advance(case_id)
    page = psd.get(f"/cases/{case_id}")
    assert page.status_code == 200
    assert "Fact-finding decision" in page.text
    assert f'href="{flow_run_link(created["flow_run_id"])}"' in page.text
    assert 'id="deadlines"' in page.text and "Account" in page.text
    assert "Referral received" in page.text and "Notice served" in page.text
    assert "SECRET-ACCOUNT-TEXT" not in page.text  # read on its own, audited page
    listing = psd.get("/cases")
    assert f"/cases/{case_id}" in listing.text

    account_id = accounts_of(case_id)[0].id
    account = psd.get(f"/cases/{case_id}/accounts/{account_id}")
    assert "SECRET-ACCOUNT-TEXT" in account.text
    with session_scope() as session:
        viewed = session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                       AuditEvent.action == "account_viewed"))
        assert [e.actor for e in viewed] == [PSD_AUTH[0]]
    assert psd.get(f"/cases/{case_id}/accounts/{account_id + 10**6}").status_code == 404
    assert psd.get("/cases/99999999").status_code == 404


def test_the_case_page_audit_trail_shows_the_code_each_step_ran_under(psd: TestClient,
                                                                      prefect) -> None:
    """Steps a flow run took show its flow and deployment version; the portal's own events,
    written outside any run, show none."""
    from tasks.code_version import RunVersions, running_under

    case_id = refer(psd)["case_id"]
    with running_under(RunVersions("0123456789ab", "8d52822f00aa11bb22cc33dd44ee55ff66778899")):
        serve_notice(case_id)
    page = psd.get(f"/cases/{case_id}")
    trail = page.text[page.text.index('id="audit-trail"'):]
    rows = trail.split('<tr class="govuk-table__row">')[2:]  # after the header's row
    served = [r for r in rows if "Notice served" in r]
    assert served and "flow 0123456789ab" in served[0]
    assert "deployment 8d52822f00aa" in served[0] and "8d52822f00aa11bb22cc" in served[0]
    received = [r for r in rows if "Referral received" in r]
    assert received and "flow " not in received[0]


def test_the_case_page_shows_no_raw_codes_and_asks_no_one_who_they_are(psd: TestClient,
                                                                      prefect) -> None:
    """Issue 9's raw codes and issue 10's decider: calendar ids only in their details line, the
    wait in words (not "Waiting for: waiting for ..."), no "None", and no form said to need an
    email address (the decider is the person signed in)."""
    case_id = refer(psd)["case_id"]
    serve_notice(case_id)
    page = psd.get(f"/cases/{case_id}").text
    assert "Waiting for the officer&#39;s account." in page
    assert "waiting for waiting" not in page.lower() and ">None<" not in page
    with session_scope() as session:
        (version,) = set(session.exec(select(Deadline.calendar_version).where(
            Deadline.case_id == case_id)))
    before, details, after = page.partition('id="calendar-versions"')
    assert details and version not in before and version in after.split("</details>")[0]
    assert version not in after.split("</details>", 1)[1]
    listing = psd.get("/cases").text
    assert version not in listing and ">None<" not in listing

    record_account(case_id, 1, "My account of the stop, in enough words.")
    advance(case_id)
    page = psd.get(f"/cases/{case_id}").text
    assert 'id="pending-decision"' in page and "Fact-finding decision" in page
    assert "email address in the form" not in page


def test_the_case_page_lists_mail_given_up_by_kind_role_and_time(psd: TestClient,
                                                                  prefect) -> None:
    """What the outbox gave up after its last attempt (tasks/outbox.py, test_notify.py): PSD
    sees what it was, to whom by role, and when; never its subject, body or address."""
    case_id = refer(psd)["case_id"]
    serve_notice(case_id)
    assert 'id="failed-mail"' not in psd.get(f"/cases/{case_id}").text
    given_up_at = datetime(2026, 6, 15, 15, 5, tzinfo=UTC)  # 4:05pm in London (BST)
    with session_scope() as session:
        notice = session.exec(select(Outbox).where(Outbox.case_id == case_id,
                                                   Outbox.kind == "officer_notice")).one()
        notice.status, notice.attempts = OutboxStatus.FAILED, 8
        notice.next_attempt_at = given_up_at
        session.add(notice)
        subject, recipient = notice.subject, notice.recipient
    page = psd.get(f"/cases/{case_id}").text
    warning = page[page.index('id="failed-mail"'):page.index("</table>", page.index(
        'id="failed-mail-list"'))]
    assert "An email of this case could not be delivered and will not be sent again" in warning
    assert "Notice to give an account" in warning and "the officer" in warning
    assert "15 Jun 2026, 4:05pm" in warning and ">8<" in warning
    assert subject not in page and recipient not in warning
    assert "may give an account" not in page  # the letter's words stay in the outbox


def test_psd_records_that_the_officer_left_through_the_page(psd: TestClient, prefect) -> None:
    case_id = refer(psd)["case_id"]
    page = psd.get(f"/cases/{case_id}/officer-left")
    token = csrf(page.text)
    bad = psd.post(f"/cases/{case_id}/officer-left",
                   data={"csrf_token": token, "left_on-day": "40", "left_on-month": "1",
                         "left_on-year": "2025"})
    assert bad.status_code == 422 and 'href="#left_on-day"' in bad.text
    yesterday = TODAY - timedelta(days=1)
    done = psd.post(f"/cases/{case_id}/officer-left",
                    data={"csrf_token": token, "left_on-day": str(yesterday.day),
                          "left_on-month": str(yesterday.month),
                          "left_on-year": str(yesterday.year)})
    assert done.status_code == 200
    assert "is discontinued" in done.text
    assert actions.load_case(case_id).state is S.DISCONTINUED


def test_psd_cancels_with_a_reason_through_the_page(psd: TestClient, prefect) -> None:
    case_id = refer(psd)["case_id"]
    token = csrf(psd.get(f"/cases/{case_id}/cancel").text)
    empty = psd.post(f"/cases/{case_id}/cancel", data={"csrf_token": token, "reason": ""})
    assert empty.status_code == 422 and 'href="#reason"' in empty.text
    assert actions.load_case(case_id).state is S.REFERRAL_RECEIVED
    done = psd.post(f"/cases/{case_id}/cancel",
                    data={"csrf_token": token, "reason": "Referred in error"})
    assert "is cancelled" in done.text
    case = actions.load_case(case_id)
    assert case.state is S.CANCELLED and case.closed_reason == "Referred in error"


def test_signing_out_ends_the_session(psd: TestClient) -> None:
    page = psd.get("/cases")
    psd.post("/logout", data={"csrf_token": csrf(page.text)})
    assert psd.get("/cases", follow_redirects=False).status_code == 303


# -- the outbox ---------------------------------------------------------------------------------

def test_the_outbox_lists_what_the_smtp_sink_received(psd: TestClient, tmp_path) -> None:
    with MailSink(tmp_path / "mail", port=0) as sink:
        for n, subject in enumerate(["First notice", "Second notice"]):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = (
                "rprp@force.example", f"officer{n}@force.example", subject)
            message.set_content(f"Plain text {n}: http://127.0.0.1/account/abc{n}")
            message.add_alternative(f'<p>HTML {n}</p><a href="http://127.0.0.1/account/abc{n}">'
                                    "Give your account</a><script>alert(1)</script>",
                                    subtype="html")
            with smtplib.SMTP(sink.host, sink.port) as smtp:
                smtp.send_message(message)
    page = psd.get("/outbox")
    assert page.text.index("Second notice") < page.text.index("First notice")  # newest first
    found = re.search(r'href="/outbox/(\d+)">Second notice', page.text)
    assert found
    stem = found.group(1)
    message_page = psd.get(f"/outbox/{stem}")
    assert "Plain text 1" in message_page.text
    # The officer's link is theirs alone: nobody reads it off the outbox.
    assert "/account/abc" not in page.text + message_page.text
    assert "only in the officer&#39;s own email" in message_page.text
    assert '<iframe class="rprp-email-frame"' in message_page.text and " sandbox " in \
        message_page.text
    html = psd.get(f"/outbox/{stem}/html")
    assert "HTML 1" in html.text and "/account/abc" not in html.text
    assert html.headers["Content-Security-Policy"].startswith("sandbox")
    assert psd.get("/outbox/999999").status_code == 404
    assert psd.get("/outbox/..%2Fsecret").status_code == 404
    assert get_settings().portal_users == USERS


def _discussion_answer(case_id: int, **values: Any) -> None:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        wait = wait_for(case)
    assert wait is not None and wait.kind == "discussion_outcome"
    apply_answer(case_id, wait.key, through_gateway(case_id, wait, values))


def test_the_case_page_shows_the_invitation_its_flag_and_the_missed_meeting(
        psd: TestClient, prefect, served_case: int) -> None:
    to_discussion(served_case)
    page = psd.get(f"/cases/{served_case}")
    assert "The officer has not been invited to a discussion yet." in page.text
    day = england_and_wales().add_working_days(TODAY, 40)
    _discussion_answer(served_case, choice=DiscussionChoice.INVITE.value,
                       meeting_date=day.isoformat(), meeting_time="10:00",
                       place="Interview room 2 <Central>")
    when = f"{day:%A} {day.day} {day:%B %Y}, 10:00"
    page = psd.get(f"/cases/{served_case}")
    shown = page.text[page.text.index('id="discussion-invitation"'):]
    assert when in shown and "Interview room 2 &lt;Central&gt;" in shown
    assert "Meeting 1, version 1" in shown
    assert 'id="discussion-beyond-target"' in page.text  # 40 working days > the 15-day target

    _discussion_answer(served_case, choice=DiscussionChoice.DID_NOT_ATTEND.value)
    page = psd.get(f"/cases/{served_case}")
    assert 'id="discussion-invitation"' not in page.text
    history = page.text[page.text.index('id="discussion-invitations"'):]
    assert "Did not attend" in history
    trail = page.text[page.text.index('id="audit-trail"'):]
    assert f"the officer did not attend on {day:%A} {day.day} {day:%B %Y}; invitation {when}" in (
        trail.replace("&lt;", "<").replace("&gt;", ">"))
    body = psd.get(f"/api/referrals/{served_case}", auth=PSD_AUTH).json()
    assert body["state"] == "non_engagement_review"
    [invitation] = body["discussion_invitations"]
    assert invitation["outcome"] == "did_not_attend" and invitation["version"] == 1
    assert invitation["beyond_target"] is True and invitation["starts_text"] == when


# -- HTTP Basic: credentials checked once, then remembered briefly --------------------------

def _count_hash_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from portal import users

    calls = [0]
    real = users._hasher

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            calls[0] += 1
            return real.verify(stored, password)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(users, "_hasher", Counting())
    return calls


def test_an_api_client_pays_for_the_password_hash_once(client, prefect, monkeypatch) -> None:
    from portal.auth import _verified

    _verified.forget_all()
    calls = _count_hash_checks(monkeypatch)
    case_id = refer(client)["case_id"]
    for _ in range(3):
        assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).status_code == 200
    assert calls[0] == 1
    # A wrong password is checked (and refused) every time, never taken from the memory.
    assert client.get(f"/api/referrals/{case_id}", auth=(PSD_AUTH[0], "wrong")).status_code == 401
    assert calls[0] == 2


def test_remembered_credentials_end_when_the_user_is_disabled_or_the_password_changes(
        client, prefect, monkeypatch) -> None:
    from portal import users
    from portal.auth import _verified

    _verified.forget_all()
    case_id = refer(client)["case_id"]
    assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).status_code == 200
    users.set_disabled(PSD_AUTH[0], True)
    assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).status_code == 401
    users.set_disabled(PSD_AUTH[0], False)
    assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).status_code == 200
    users.reset_password(PSD_AUTH[0], "a-new-long-password-1")
    assert client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH).status_code == 401
    assert client.get(f"/api/referrals/{case_id}",
                      auth=(PSD_AUTH[0], "a-new-long-password-1")).status_code == 200


def test_no_memory_of_credentials_when_the_policy_says_zero(client, prefect, monkeypatch) -> None:
    from portal.auth import _verified

    _verified.forget_all()
    monkeypatch.setenv("RPRP_API_CREDENTIAL_SECONDS", "0")
    reset_settings()
    calls = _count_hash_checks(monkeypatch)
    case_id = refer(client)["case_id"]
    client.get(f"/api/referrals/{case_id}", auth=PSD_AUTH)
    assert calls[0] == 2
