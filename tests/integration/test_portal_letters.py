"""The portal's part in what people are told: the officer declining to give an account on the
account page, and the report's complainant text and PDR discussion on the case page and API.

Same setting as test_portal_api.py (whose fixtures these tests use): the real case DB and
domain steps, the portal's calls to Prefect recorded instead of made.
"""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import select

from infra.db import session_scope
from models import Deadline, Report
from models.enums import CaseState, DeadlineKind, DeadlineStatus
from portal import account_code, actions
from tasks.casework import advance, apply_answer
from tests.integration.test_portal_api import (  # noqa: F401  (fixtures)
    PSD_AUTH,
    REVIEWER_AUTH,
    app_client,
    client,
    csrf,
    link_token,
    prefect,
    psd,
    refer,
    reviewer,
    serve_notice,
    to_discussion,
)
from tests.support.cases import REVIEWER, audit_actions, outbox, report_answer, through_gateway

S = CaseState
SUMMARY = "Stops will now be explained at the start, and this is being checked."


def served_complaint(http: TestClient) -> int:
    case_id = refer(http, origin="public_complaint", complainant={
        "name": "Jo Public", "email": "jo.public@example.org"})["case_id"]
    serve_notice(case_id)
    return case_id


def test_the_officer_may_decline_after_confirming(client, prefect) -> None:  # noqa: F811
    case_id = served_complaint(client)
    token = link_token(case_id)
    page = client.get(f"/account/{token}")
    assert "I do not want to give an account" in page.text
    confirm = client.get(f"/account/{token}/decline")
    assert confirm.status_code == 200 and "Confirm your choice" in confirm.text

    unconfirmed = client.post(f"/account/{token}/decline", data={})
    assert unconfirmed.status_code == 422
    assert "Confirm that you do not want to give an account" in unconfirmed.text
    assert actions.load_case(case_id).state is S.AWAITING_ACCOUNT
    assert "account_declined" not in audit_actions(case_id)

    # Only the officer may decline: without the code emailed to them, nothing changes.
    uncoded = client.post(f"/account/{token}/decline", data={"confirm": "yes"})
    assert uncoded.status_code == 422 and "Ask for a code first" in uncoded.text
    code = account_code.issue(case_id, 1)
    not_it = str((int(code[0]) + 1) % 10) + code[1:]
    wrong = client.post(f"/account/{token}/decline", data={"confirm": "yes", "code": not_it})
    assert wrong.status_code == 422 and "The code is not right" in wrong.text
    assert actions.load_case(case_id).state is S.AWAITING_ACCOUNT
    assert "account_declined" not in audit_actions(case_id)

    done = client.post(f"/account/{token}/decline", data={"confirm": "yes", "code": code},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/account/{token}/declined"
    assert "You declined to give an account" in client.get(done.headers["location"]).text
    assert actions.load_case(case_id).state is S.NO_ACCOUNT
    assert prefect.calls[-1] == ("wake_case", (case_id,))
    assert audit_actions(case_id).count("account_declined") == 1
    assert sorted(r.recipient for r in outbox(case_id) if r.kind == "account_declined") == [
        "psd@force.example", REVIEWER]

    # Pressing again changes nothing; the account page no longer offers to decline.
    again = client.post(f"/account/{token}/decline", data={"confirm": "yes", "code": code},
                        follow_redirects=False)
    assert again.status_code == 303
    assert audit_actions(case_id).count("account_declined") == 1
    page = client.get(f"/account/{token}")
    assert "I do not want to give an account" not in page.text
    assert "that you do not want to give an account" in page.text


def test_declining_is_not_offered_once_the_case_moved_on(client, prefect) -> None:  # noqa: F811
    case_id = served_complaint(client)
    to_discussion(case_id)
    token = link_token(case_id)
    assert "I do not want to give an account" not in client.get(f"/account/{token}").text
    refused = client.post(f"/account/{token}/decline", data={"confirm": "yes"})
    assert refused.status_code == 409
    assert "account_declined" not in audit_actions(case_id)


def reported_case(http: TestClient) -> int:
    case_id = served_complaint(http)
    to_discussion(case_id)
    wait = advance(case_id)[1]
    assert wait is not None
    apply_answer(case_id, wait.key, through_gateway(case_id, wait, {
        "choice": "Discussion held and the officer engaged", "held_on": date.today().isoformat()}))
    wait = advance(case_id)[1]
    assert wait is not None
    assert apply_answer(case_id, wait.key, through_gateway(
        case_id, wait, report_answer(complainant_summary=SUMMARY))) is S.REPORT_SUBMITTED
    return case_id


def test_psd_sees_the_complainant_text_and_records_the_pdr_discussion(
        client, prefect) -> None:  # noqa: F811
    case_id = reported_case(client)
    from tests.integration.test_portal_api import sign_in

    signed_in = sign_in(client, PSD_AUTH)
    page = signed_in.get(f"/cases/{case_id}")
    assert "What the complainant is told about the learning" in page.text and SUMMARY in page.text
    assert "Record the PDR discussion" in page.text

    tomorrow = date.today() + timedelta(days=1)
    future = signed_in.post(f"/cases/{case_id}/pdr-discussed", data={
        "csrf_token": csrf(page.text), "pdr-day": str(tomorrow.day),
        "pdr-month": str(tomorrow.month), "pdr-year": str(tomorrow.year)})
    assert future.status_code == 422 and "must be today or in the past" in future.text
    assert "pdr_discussed" not in audit_actions(case_id)

    today = date.today()
    done = signed_in.post(f"/cases/{case_id}/pdr-discussed", data={
        "csrf_token": csrf(page.text), "pdr-day": str(today.day), "pdr-month": str(today.month),
        "pdr-year": str(today.year)}, follow_redirects=False)
    assert done.status_code == 303
    page = signed_in.get(f"/cases/{case_id}")
    assert "Record the PDR discussion" not in page.text and "recorded by" in page.text
    assert audit_actions(case_id).count("pdr_discussed") == 1
    with session_scope() as session:
        pdr = session.exec(select(Deadline).where(Deadline.case_id == case_id,
                                                  Deadline.kind == DeadlineKind.PDR)).one()
    assert pdr.status is DeadlineStatus.MET


def test_the_reviewer_records_the_pdr_discussion_through_the_api(
        client, prefect) -> None:  # noqa: F811
    case_id = reported_case(client)
    url = f"/api/cases/{case_id}/pdr-discussed"
    early = client.post(url, json={"discussed_on": (date.today() - timedelta(days=3)).isoformat()},
                        auth=REVIEWER_AUTH)
    assert early.status_code == 422 and "before the report" in early.text
    response = client.post(url, json={"discussed_on": date.today().isoformat()},
                           auth=REVIEWER_AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["report"]["pdr_discussed_on"] == date.today().isoformat()
    assert body["report"]["complainant_summary"] == SUMMARY
    assert body["report"]["pdr_recorded_by"]
    assert client.post(url, json={"discussed_on": date.today().isoformat()},
                       auth=PSD_AUTH).status_code == 422  # already recorded
    with session_scope() as session:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
    assert report.pdr_discussed_on == date.today()
