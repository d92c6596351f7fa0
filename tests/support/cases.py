"""Building and driving cases in tests, the way PSD, officers, reviewers and the sweep do."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from pydantic import BaseModel
from sqlmodel import select

from infra.db import session_scope
from models import AuditEvent, Case, Outbox
from models.enums import CaseState
from portal.auth import PSD_DECISION_MAKER, User
from portal.gateway import submit_decision
from rprp.samples import PSD, REVIEWER, referral_data
from rprp.samples import report_answer as report_answer  # the tests' answers are the product's
from tasks.casework import Wait, record_account
from tasks.decisions import Step, form_class, take
from tasks.intake import ReferralIn, create_case
from tasks.orchestration import start_case_flow, suspension, wake_case
from tasks.people import entitlement
from tasks.records import lock_case
from tests.support.stack import WAIT_CEILING, eventually

# The signed-in people the gateway knows (portal.auth.User), as the decisions' senders.
AS_REVIEWER = User("Sgt Sam Reviewer", REVIEWER, frozenset({"reviewer"}))
AS_PSD = User("PSD decision-maker", PSD, frozenset({"psd", PSD_DECISION_MAKER}))
AS_OTHER_REVIEWER = User("Sgt Other", "sgt.other@force.example", frozenset({"reviewer"}))


def sample_referral(**overrides: Any) -> ReferralIn:
    """rprp.samples' referral, as the record takes it (overrides merge as there)."""
    return ReferralIn.model_validate(referral_data(**overrides))


async def open_case(referral: ReferralIn | None = None) -> int:
    """What the portal does on a valid referral: store the case, then start its flow run."""
    with session_scope() as session:
        case, _ = create_case(session, referral or sample_referral(), actor=PSD)
        case_id = case.id
    assert case_id is not None
    await start_case_flow(case_id)
    return case_id


def case_row(case_id: int) -> Case:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


async def paused_in(case_id: int, state: CaseState, timeout: float = WAIT_CEILING) -> Case:
    """Wait until the case is in `state` and its flow run is suspended waiting for input, with
    the form's schema saved (Prefect pauses the run a moment before it stores the schema, and
    refuses an answer in between)."""

    async def check() -> Case | None:
        case = case_row(case_id)
        if case.state is not state or not case.flow_run_id:
            return None
        waiting = await suspension(case.flow_run_id)
        return case if waiting is not None and waiting.form_saved else None

    return await eventually(check, timeout, f"case {case_id} paused in {state.value}")  # type: ignore[return-value]


async def finished(case_id: int, timeout: float = WAIT_CEILING) -> str:
    async def check() -> str | None:
        case = case_row(case_id)
        async with get_client() as client:
            run = await client.read_flow_run(UUID(case.flow_run_id or ""))
        return run.state.name if run.state and run.state.is_final() else None

    return await eventually(check, timeout, f"flow run of case {case_id} to finish")  # type: ignore[return-value]


async def submit(case_id: int, by: User = AS_REVIEWER, flow_run_id: str | None = None,
                 **answer: Any) -> dict[str, Any]:
    """What the Prefect UI's Resume form sends, through the gateway, signed in as `by`;
    returns the gateway's answer (ACCEPT, or REJECT with the reason the UI shows)."""
    run = flow_run_id or case_row(case_id).flow_run_id or ""
    async with httpx.AsyncClient(timeout=30) as client:
        result = await submit_decision(by, run, answer, client)
    assert result is not None, "the run is a case's"
    return result


async def decide(case_id: int, by: User = AS_REVIEWER, flow_run_id: str | None = None,
                 **answer: Any) -> None:
    """A decision the gateway accepts and forwards to Prefect."""
    result = await submit(case_id, by, flow_run_id, **answer)
    assert result["status"] == "ACCEPT", result


async def invite_officer(case_id: int, day: date | None = None, hhmm: str = "10:00") -> Case:
    """The reviewer invites the officer at the discussion step (what the Resume form sends);
    returns once the flow run has recorded it and asks the step again."""
    from tasks.calendar import england_and_wales

    before = case_row(case_id).step_answers
    day = day or england_and_wales().add_working_days(date.today(), 2)
    await decide(case_id, choice="Invite the officer: send the date, time and place below",
                 meeting_date=day.isoformat(), meeting_time=hhmm,
                 place="Interview room 2, Central police station")
    await eventually(lambda: case_row(case_id).step_answers > before, 90,
                     f"case {case_id} to record the invitation")
    return await paused_in(case_id, CaseState.DISCUSSION_SCHEDULING)


async def give_account(case_id: int, text: str) -> None:
    """What the portal's account page does."""
    case = case_row(case_id)
    _, wake = record_account(case_id, case.notice_round, text)
    if wake:
        await wake_case(case_id)


def outbox(case_id: int) -> list[Outbox]:
    with session_scope() as session:
        return list(session.exec(select(Outbox).where(Outbox.case_id == case_id)
                                 .order_by(Outbox.id)))  # type: ignore[arg-type]


def audit_actions(case_id: int) -> list[str]:
    with session_scope() as session:
        return [e.action for e in session.exec(
            select(AuditEvent).where(AuditEvent.case_id == case_id)
            .order_by(AuditEvent.id))]  # type: ignore[arg-type]


def through_gateway(case_id: int, wait: Wait, values: dict[str, Any], by: User = AS_REVIEWER,
                    now: datetime | None = None,
                    action_ids: list[int] | None = None) -> BaseModel:
    """The gateway's checks and submission record for an answer, without Prefect: returns the
    answer exactly as the flow would receive it (confidential fields sealed)."""
    with session_scope() as session:
        case = lock_case(session, case_id)
        form = form_class(session, case, wait.kind, action_ids)
        step = Step(case_id, case.flow_run_id or "", wait, form)
        basis = entitlement(case, by.email, decision_maker=by.has(PSD_DECISION_MAKER),
                            reviewer_may=step.reviewer_may, psd_may=step.psd_may)
        forwarded, errors, _ = take(session, case, step, values, by.email, basis, now)
    assert forwarded is not None, errors
    return forwarded
