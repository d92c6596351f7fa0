"""One flow run per case, from notice to closure: an interpreter of the case record.

Each pass reads the case, does the automatic steps, then suspends (no process held) until a
person answers in the Prefect UI, the portal records an account, or the sweep moves a deadline.
A wait for something other than a person's answer (the officer's account, an action-plan review
run) suspends with no form, so nobody is offered one; the portal and the sweep wake it without
input. Prefect replays the flow from the top on resume; every step checks the record, so replay is
harmless. Only the case id crosses into Prefect: parameters, results and logs hold nothing more; a
person's answer holds no confidential text (the gateway sealed it into the case DB).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

from flows.run_logs import log_suspensions_as_info
from models import Case
from models.enums import CaseState
from rprp.db import session_scope
from tasks.briefing import describe
from tasks.casework import Wait, advance, apply_answer
from tasks.decisions import form_class
from tasks.notify import deliver_pending

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
    """The form a waiting step needs, rebuilt the same way on every replay (and by the gateway)."""
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


def wake_key(wait: Wait, passes: dict[str, int]) -> str:
    """A fresh suspension key for each pass through the same internal wait.

    A wake that finds nothing changed (a retried wake, or Resume pressed in the UI) replays the
    run to the same wait; Prefect refuses a key it has resumed before and returns at once, so the
    next pass takes the next key, until one that has not fired suspends the run again.
    """
    n = passes.get(wait.key, 0)
    passes[wait.key] = n + 1
    return f"{wait.key}-pass-{n}"

