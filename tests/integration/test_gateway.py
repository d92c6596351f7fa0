"""The gateway in front of a real Prefect server (with its API credentials) and a real worker:
forged decisions are refused, by Prefect or by the flow, role limits hold, a decision whose
content breaks a rule is refused at once without echoing it, and the case stays as it was."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient
from prefect.flow_runs import aresume_flow_run
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import AuditEvent, Decision
from models.enums import CaseState
from portal.app import create_app
from tests.support.cases import (
    AS_OTHER_REVIEWER,
    AS_PSD,
    REVIEWER,
    case_row,
    decide,
    give_account,
    open_case,
    paused_in,
    report_answer,
    submit,
)
from tests.support.stack import eventually
from tests.support.users import use_sign_ins

S = CaseState
pytestmark = [pytest.mark.integration]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OTHER = "sgt.other@force.example"
USERS = f"{REVIEWER}:rev-pass-1:reviewer,{OTHER}:other-pass-1:reviewer"


def decisions_of(case_id: int) -> list[Decision]:
    with session_scope() as session:
        return list(session.exec(select(Decision).where(Decision.case_id == case_id)))


def rejections(case_id: int) -> list[AuditEvent]:
    with session_scope() as session:
        return list(session.exec(select(AuditEvent).where(
            AuditEvent.case_id == case_id,
            AuditEvent.action.startswith("decision_rejected"))))  # type: ignore[attr-defined]


async def at_fact_finding() -> int:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "My account of what happened at the stop.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    return case_id


async def test_forged_decisions_are_refused_and_change_nothing(stack, prefect_api) -> None:
    case_id = await at_fact_finding()
    run_id = case_row(case_id).flow_run_id or ""
    answer = {"choice": "Fact-finding needed"}

    # Straight to Prefect without credentials: Prefect refuses.
    async with httpx.AsyncClient() as bare:
        refused = await bare.post(f"{prefect_api}/flow_runs/{run_id}/resume",
                                  json={"run_input": answer})
        deleted = await bare.delete(f"{prefect_api}/flow_runs/{run_id}")
    assert refused.status_code == 401 and deleted.status_code == 401

    # With the server's credentials but not through the gateway: Prefect takes it, the flow
    # refuses it, audits it, and asks again; the case has not moved.
    await aresume_flow_run(UUID(run_id), run_input=answer)
    await eventually(lambda: rejections(case_id), 90, "the flow to refuse the forged answer")
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    assert decisions_of(case_id) == []
    (event,) = rejections(case_id)
    assert event.actor == "unverified" and "gateway" in event.detail

    # Through the gateway by someone not entitled: refused before Prefect sees it.
    other = await submit(case_id, by=AS_OTHER_REVIEWER, **answer)
    assert other["status"] == "REJECT"
    assert "the case's reviewer" in other["details"]["reason"]
    assert case_row(case_id).rejected_inputs == case.rejected_inputs

    # The reviewer, through the gateway: taken, and the audit log names them.
    await decide(case_id, **answer)
    await paused_in(case_id, S.FACT_FINDING)
    (decision,) = decisions_of(case_id)
    assert decision.decided_by == REVIEWER


async def test_a_decision_breaking_a_rule_is_refused_at_once_in_the_forms_words(stack) -> None:
    case_id = await at_fact_finding()
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    case = await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    future = (datetime.now(UTC) + timedelta(days=8)).date().isoformat()
    refused = await submit(case_id, choice="Discussion held and the officer engaged",
                           held_on=future)
    assert refused["status"] == "REJECT"
    assert "cannot be in the future" in refused["details"]["reason"]
    assert future not in refused["details"]["reason"]
    assert case_row(case_id).state is S.DISCUSSION_SCHEDULING
    assert case_row(case_id).rejected_inputs == case.rejected_inputs

    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    typed = "[Session expired: sign in again](http://evil.example/) <b>x</b>"
    bad = report_answer(agreed_on=(datetime.now(UTC) - timedelta(days=3)).date().isoformat(),
                        officer_lessons=typed, review_period_weeks=99)
    bad["actions"][0]["due_on"] = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    bad["actions"][0]["description"] = typed
    refused = await submit(case_id, **bad)
    reason = refused["details"]["reason"]
    assert refused["status"] == "REJECT"
    # All of its errors at once, in the form's words, and nothing typed echoed back.
    assert "'Review period (weeks)' must be a whole number from 1 to 52" in reason
    refused = await submit(case_id, **dict(bad, review_period_weeks=12))
    reason = refused["details"]["reason"]
    assert "cannot be before the discussion" in reason
    assert "Action 1: the due date must be on or after" in reason
    assert "evil.example" not in reason and "<b>" not in reason
    assert case_row(case_id).state is S.DISCUSSION_HELD
    assert decisions_of(case_id)[-1].kind == "discussion_outcome"


async def test_psd_only_decisions_are_refused_for_the_reviewer(stack) -> None:
    case_id = await at_fact_finding()
    await decide(case_id, choice="Fact-finding needed")
    await paused_in(case_id, S.FACT_FINDING)
    await decide(case_id, choice="Substantial new evidence: refer back to PSD",
                 reasons="CCTV shows more")
    await paused_in(case_id, S.REFERRED_BACK)
    refused = await submit(case_id, choice="No further action", reasons="Reviewer tries")
    assert refused["status"] == "REJECT" and "PSD decision-maker" in refused["details"]["reason"]
    await decide(case_id, by=AS_PSD, choice="Continue RPRP, same scope", reasons="AA reassessed")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    assert decisions_of(case_id)[-1].decided_by == AS_PSD.email


def reviewed_by(email: str) -> set[str]:
    """The flow runs of every case (and its reviews) this person reviews."""
    from models import ActionReview, Case

    with session_scope() as session:
        cases = session.exec(select(Case).where(Case.reviewer_email == email)).all()
        ids = [c.id for c in cases]
        reviews = session.exec(select(ActionReview).where(
            ActionReview.case_id.in_(ids))).all()  # type: ignore[union-attr]
    return {c.flow_run_id for c in cases if c.flow_run_id} | {
        r.flow_run_id for r in reviews if r.flow_run_id}


def sign_in(client: TestClient, name: str, password: str) -> None:
    page = client.get("/login")
    response = client.post("/login", data={
        "username": name, "password": password, "next": "/cases",
        "csrf_token": CSRF.search(page.text).group(1)},  # type: ignore[union-attr]
        follow_redirects=False)
    assert response.status_code == 303, response.text


async def test_what_a_reviewer_may_do_through_the_gateway(stack, monkeypatch, tmp_path) -> None:
    mine = await at_fact_finding()
    run_id = case_row(mine).flow_run_id or ""
    monkeypatch.setenv("RPRP_PORTAL_USERS", USERS)
    reset_settings()
    use_sign_ins(USERS)
    with TestClient(create_app(mail_dir=tmp_path)) as reviewer, \
            TestClient(create_app(mail_dir=tmp_path)) as other:
        assert reviewer.get(f"/prefect/api/flow_runs/{run_id}").status_code == 401
        sign_in(reviewer, REVIEWER, "rev-pass-1")
        sign_in(other, OTHER, "other-pass-1")

        # Their own case's run, its task runs and logs; nothing of anyone else's.
        assert reviewer.get(f"/prefect/api/flow_runs/{run_id}").json()["id"] == run_id
        listed = reviewer.post("/prefect/api/flow_runs/filter", json={"limit": 200}).json()
        assert run_id in {r["id"] for r in listed}
        assert {r["id"] for r in listed} <= reviewed_by(REVIEWER)
        assert other.post("/prefect/api/flow_runs/filter", json={"limit": 200}).json() == []
        assert other.post("/prefect/api/flow_runs/count", json={}).json() == 0
        assert other.post("/prefect/api/logs/filter", json={"limit": 200}).json() == []
        assert other.get(f"/prefect/api/flow_runs/{run_id}").status_code == 403

        # A second reviewer's resume is refused; nobody but an operator changes Prefect.
        refused = other.post(f"/prefect/api/flow_runs/{run_id}/resume",
                             json={"run_input": {"choice": "Fact-finding needed"}}).json()
        assert refused["status"] == "REJECT"
        deleted = reviewer.delete(f"/prefect/api/flow_runs/{run_id}")
        assert deleted.status_code == 403 and "operator" in deleted.json()["detail"]
        for path in ("/prefect/api/flow_runs/{}/set_state", "/prefect/api/deployments/",
                     "/prefect/api/variables/", "/prefect/api/block_documents/"):
            assert reviewer.post(path.format(run_id), json={}).status_code == 403

        # The UI asks the browser for no Prefect credentials: the gateway holds them.
        assert reviewer.get("/prefect/ui-settings").json()["auth"] is None

        # Their own decision, through the gateway's HTTP door.
        taken = reviewer.post(f"/prefect/api/flow_runs/{run_id}/resume", json={
            "run_input": {"choice": "No fact-finding needed: go to the discussion"}}).json()
        assert taken["status"] == "ACCEPT", taken
    await paused_in(mine, S.DISCUSSION_SCHEDULING)
    assert decisions_of(mine)[-1].decided_by == REVIEWER
