"""One flow run per case, from notice to closure: an interpreter of the case record.

Each pass reads the case, does the automatic steps, then suspends (no process held) until a
person answers in the Prefect UI, the portal records an account, or the sweep moves a deadline.
A wait for something other than a person's answer (the officer's account, an action-plan review
run) suspends with no form, so nobody is offered one; the portal and the sweep wake it without
input. Prefect replays the flow from the top on resume; every step checks the record, so replay is
harmless. Only the case id crosses into Prefect: parameters, results and logs hold nothing more.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput, keyset_from_base_key
from prefect.input.actions import adelete_flow_run_input
from prefect.runtime import flow_run

from flows.run_logs import log_suspensions_as_info
from models import Case
from models.enums import CaseState
from models.forms import (
    COMPLAINANT_SUMMARY_DEFAULT,
    ComplaintReportForm,
    DiscussionOutcome,
    FactFindingDecision,
    FactFindingOutcome,
    ReportForm,
    authority_decision_form,
    non_engagement_form,
    prefilled,
)
from rprp.db import session_scope
from tasks.briefing import describe
from tasks.casework import Wait, advance, apply_answer
from tasks.notify import deliver_pending
from tasks.records import officer_of

STEP = {"cache_policy": NO_CACHE, "persist_result": False}
log_suspensions_as_info()


@task(name="advance-case", **STEP)
def advance_case(case_id: int) -> tuple[CaseState, Wait | None]:
    """Automatic steps: serve notice, move to the next decision, file to the record."""
    _remember_flow_run(case_id)
    return advance(case_id)


@task(name="send-mail", retries=2, retry_delay_seconds=5, **STEP)
async def send_mail() -> int:
    """Deliver what the last step queued; what fails stays queued for the sweep."""
    return (await deliver_pending()).sent


@task(name="record-decision", **STEP)
def record_decision(case_id: int, wait_key: str, answer: RunInput) -> CaseState:
    return apply_answer(case_id, wait_key, answer)


def form_for(case_id: int, wait: Wait) -> type[RunInput]:
    """The form a waiting step needs, rebuilt the same way on every replay."""
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        upp = officer_of(session, case).upp_available
        complaint = case.origin.has_complainant_duties
    forms: dict[str, type[RunInput]] = {
        "fact_finding_decision": FactFindingDecision,
        "fact_finding_outcome": FactFindingOutcome,
        "authority_decision": authority_decision_form(upp),
        "discussion_outcome": DiscussionOutcome,
        "non_engagement": non_engagement_form(upp),
        "report": ComplaintReportForm if complaint else ReportForm,
    }
    form = forms[wait.kind]
    if form is ComplaintReportForm:
        form = prefilled(form, complainant_summary=COMPLAINANT_SUMMARY_DEFAULT)
    return form.with_initial_data(description=describe(case_id, wait))


def _remember_flow_run(case_id: int) -> None:
    run_id = flow_run.get_id()
    if not run_id:
        return
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is not None and case.flow_run_id is None:
            case.flow_run_id = str(run_id)
            session.add(case)


@flow(name="rprp-case", log_prints=False, persist_result=False)
async def rprp_case(case_id: int) -> str:
    """Carry case `case_id` through RPRP; returns its final state."""
    logger = get_run_logger()
    passes: dict[str, int] = {}
    while True:
        state, wait = advance_case(case_id)
        await send_mail()
        if wait is None:
            logger.info("Case %s finished in state %s", case_id, state.value)
            return state.value
        logger.info("Case %s waits in %s (%s)", case_id, state.value, wait.key)
        if wait.kind == "wake":
            await suspend_flow_run(key=wake_key(wait, passes))
            continue
        answer = await suspend_flow_run(wait_for_input=form_for(case_id, wait), key=wait.key)
        record_decision(case_id, wait.key, answer)
        if wait.kind == "report":
            await forget_answer(wait.key)


def wake_key(wait: Wait, passes: dict[str, int]) -> str:
    """A fresh suspension key for each pass through the same internal wait.

    A wake that finds nothing changed (a retried wake, or Resume pressed in the UI) replays the
    run to the same wait; Prefect refuses a key it has resumed before and returns at once, so the
    next pass takes the next key, until one that has not fired suspends the run again.
    """
    n = passes.get(wait.key, 0)
    passes[wait.key] = n + 1
    return f"{wait.key}-pass-{n}"


async def forget_answer(wait_key: str) -> None:
    """The report's discussion summary is confidential: once it is in the case DB, drop
    Prefect's copy of the submitted form."""
    await adelete_flow_run_input(key=keyset_from_base_key(f"suspended-{wait_key}")["response"])
