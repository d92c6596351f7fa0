"""One flow run per case, from notice to closure: an interpreter of the case record.

Each pass reads the case, does the automatic steps, then suspends (no process held) until a
person answers in the Prefect UI, the portal records an account, or the sweep moves a deadline.
Prefect replays the flow from the top on resume; every step checks the record, so replay is
harmless. Only the case id crosses into Prefect: parameters, results and logs hold nothing more; a
person's answer holds no confidential text (the gateway sealed it into the case DB).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from models import Case
from models.enums import CaseState
from models.forms import Wake
from rprp.db import session_scope
from tasks.briefing import describe
from tasks.casework import Wait, advance, apply_answer
from tasks.decisions import form_class
from tasks.notify import deliver_pending

STEP = {"cache_policy": NO_CACHE, "persist_result": False}


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
    if wait.kind == "wake":
        return Wake
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        form = form_class(session, case, wait.kind)
    return form.with_initial_data(description=describe(case_id, wait))  # type: ignore[attr-defined]


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
    while True:
        state, wait = advance_case(case_id)
        await send_mail()
        if wait is None:
            logger.info("Case %s finished in state %s", case_id, state.value)
            return state.value
        logger.info("Case %s waits in %s (%s)", case_id, state.value, wait.key)
        answer = await suspend_flow_run(wait_for_input=form_for(case_id, wait), key=wait.key)
        if wait.kind != "wake":
            record_decision(case_id, wait.key, answer)
