"""One flow run per case, from notice to closure, step by step as the process map has it:

    serve-notice ─► await-account ─► fact-finding-decision ─┬──────────────────────────┐
                                                            ├─► fact-finding-outcome ──┤
                                                            └─► refer-back-to-psd ─────┤ (a new
        notice: serve-notice again; or misconduct, UPP, vetting, no further action ─► close-case)
    ┌───────────────────────────────────────────────────────────────────────────────────┘
    └─► discussion-outcome (invite, move, then held) ─┬─► file-report ─► report-quality-check
            │                                          │   (PSD, by policy; a return opens
            │                                          │    file-report again) ─► schedule-action-review
            ▲                                          │      ─► action-review (until every action
            └── non-engagement-decision ◄──────────────┘          is closed) ─► close-case
                 (re-invite; or UPP, formal proceedings ─► close-case)

Each step is a task named as above (its run named with the case reference and round, e.g.
`fact-finding-decision RPRP-000001 r1`); what each step is and does is declared once, in
tasks/steps.py. Prefect replays the flow from the top on resume: the body reads the case record
(`where`) before each step and runs only the step the record says is next, so a replay repeats
nothing and shows in the run graph only what it did. Waits suspend the run (no process held): a
person's decision with its Resume form; the officer's account and the action-plan review's due
date with none, woken by the portal or the sweep. Only ids cross into Prefect: parameters,
results and logs hold nothing more; a person's answer holds no confidential text (the gateway
sealed it into the case DB).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput
from prefect.runtime import flow_run
from sqlmodel import select

from flows.asking import ask, suspend
from flows.outages import through_database_outages
from flows.run_versions import this_run
from infra.db import session_scope
from models import Case, Outbox
from models.enums import CaseState
from tasks import steps
from tasks.action_reviews import record_review, review_wait
from tasks.briefing import describe
from tasks.casework import Wait, apply_answer, opened_review, take_step, wait_for
from tasks.code_version import running_under, source_version
from tasks.decisions import form_class
from tasks.notify import deliver_pending
from tasks.outbox import PENDING
from tasks.steps import Step, StepKind

S = CaseState


@dataclass(frozen=True)
class Here:
    """Where the case stands, read from the record before each step (ids and codes only)."""

    case_id: int
    reference: str
    round: int  # the notice round; at an action-plan review, the review's number
    state: CaseState
    wait: Wait | None


def where(case_id: int) -> Here:
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        wait = wait_for(case, session)
        review = opened_review(session, case) if wait and wait.kind == StepKind.ACTION_REVIEW \
            else None
        return Here(case_id, case.reference, review.number if review else case.notice_round,
                    case.state, wait)


def run_name(step: Step, here: Here) -> str:
    """`fact-finding-decision RPRP-000001 r1`: the reference is not confidential; names are."""
    return f"{step.name} {here.reference} r{here.round}"


# -- the automatic steps -----------------------------------------------------------------------

def _automatic(step: Step, doc: str) -> Task[[int], str]:
    def run(case_id: int) -> str:
        done, state = take_step(case_id)
        get_run_logger().info("%s: %s", step.name, "done" if done else "already done")
        return state.value

    run.__doc__ = doc
    return task(name=step.name, cache_policy=NO_CACHE, persist_result=False)(run)


serve_notice = _automatic(steps.SERVE_NOTICE, "Serve the written notice; the officer's "
                          "5-working-day account window starts.")
await_account = _automatic(steps.AWAIT_ACCOUNT, "The account wait is over (account given, "
                           "declined, or the deadline passed): open the fact-finding decision.")
move_off_retired_step = _automatic(steps.MOVE_OFF_RETIRED_STEP, "The case waited on a step "
                                   "this code no longer has: move it on by the step's rule.")
schedule_action_review = _automatic(steps.SCHEDULE_ACTION_REVIEW, "The report is filed and its "
                                    "first review is due: monitor the action plan.")


# -- the people's decisions --------------------------------------------------------------------

def _decision(step: Step) -> Task[[int, str, Any], str]:
    def decide(case_id: int, wait_key: str, answer: RunInput) -> str:
        return apply_answer(case_id, wait_key, answer).value

    decide.__doc__ = f"Apply the answer to '{step.title}' (tasks/steps.py: {step.name})."
    return task(name=step.name, cache_policy=NO_CACHE, persist_result=False)(decide)


fact_finding_decision = _decision(steps.FACT_FINDING_DECISION)
fact_finding_outcome = _decision(steps.FACT_FINDING_OUTCOME)
refer_back_to_psd = _decision(steps.REFER_BACK_TO_PSD)
discussion_outcome = _decision(steps.DISCUSSION_OUTCOME)
non_engagement_decision = _decision(steps.NON_ENGAGEMENT_DECISION)
file_report = _decision(steps.FILE_REPORT)
report_quality_check = _decision(steps.REPORT_QUALITY_CHECK)


@task(name=steps.ACTION_REVIEW.name, cache_policy=NO_CACHE, persist_result=False)
def action_review(case_id: int, review_number: int, wait_key: str, answer: RunInput) -> str:
    """Record the reviewer's notes on each open action; the case closes when all are closed."""
    closed = record_review(case_id, review_number, wait_key, answer)
    return "every action closed" if closed else "actions still open"


@task(name="send-mail", cache_policy=NO_CACHE, persist_result=False)
async def send_mail() -> int:
    """Deliver what the steps queued; what fails stays in the outbox, which retries it."""
    return (await deliver_pending()).sent


@task(name=steps.CLOSE_CASE.name, cache_policy=NO_CACHE, persist_result=False)
async def close_case(case_id: int) -> str:
    """The case has ended: its closing letters go, and the run ends with the case's state."""
    await deliver_pending()
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case.state.value


# -- the flow ----------------------------------------------------------------------------------

@flow(name="rprp-case", version=source_version(), log_prints=False, persist_result=False)
async def rprp_case(case_id: int) -> str:
    """Carry case `case_id` through RPRP; returns its final state. Each audit event records the
    flow's and the deployment's version this run has (docs/changing-the-flow.md)."""
    with running_under(await this_run()):
        return await through_database_outages(lambda: carry(case_id), f"case {case_id}")


async def carry(case_id: int) -> str:
    _remember_flow_run(case_id)
    passes: dict[str, int] = {}
    while True:
        here = where(case_id)
        match here.state:
            case state if state in steps.RETIRED:  # a step the code no longer has: its rule
                step(move_off_retired_step, steps.MOVE_OFF_RETIRED_STEP, here)
            case S.REFERRAL_RECEIVED:
                step(serve_notice, steps.SERVE_NOTICE, here)
            case S.AWAITING_ACCOUNT:
                await wait_to_be_woken(here, passes)  # the account, or the sweep at the deadline
            case S.ACCOUNT_RECEIVED | S.NO_ACCOUNT:
                step(await_account, steps.AWAIT_ACCOUNT, here)
            case S.FACT_FINDING_DECISION:
                await decide(fact_finding_decision, steps.FACT_FINDING_DECISION, here)
            case S.FACT_FINDING:
                await decide(fact_finding_outcome, steps.FACT_FINDING_OUTCOME, here)
            case S.REFERRED_BACK:
                await decide(refer_back_to_psd, steps.REFER_BACK_TO_PSD, here)
            case S.DISCUSSION_SCHEDULING:
                await decide(discussion_outcome, steps.DISCUSSION_OUTCOME, here)
            case S.NON_ENGAGEMENT_REVIEW:
                await decide(non_engagement_decision, steps.NON_ENGAGEMENT_DECISION, here)
            case S.DISCUSSION_HELD:
                await decide(file_report, steps.FILE_REPORT, here)
            case S.REPORT_QUALITY_CHECK:
                await decide(report_quality_check, steps.REPORT_QUALITY_CHECK, here)
            case S.REPORT_SUBMITTED:
                step(schedule_action_review, steps.SCHEDULE_ACTION_REVIEW, here)
            case S.ACTIONS_MONITORING:
                await review_the_actions(here, passes)  # woken by the sweep when one is due
            case _:
                final: str = await close_case.with_options(
                    task_run_name=run_name(steps.CLOSE_CASE, here))(case_id)
                get_run_logger().info("Case %s finished in state %s", case_id, final)
                return final


def step(automatic: Callable[..., Any], declared: Step, here: Here) -> None:
    automatic.with_options(task_run_name=run_name(declared, here))(here.case_id)  # type: ignore[attr-defined]


async def decide(decision: Task[[int, str, Any], str], declared: Step, here: Here) -> None:
    """Ask the step's form (the run suspends until the person answers), then apply it."""
    assert here.wait is not None and here.wait.kind == declared.kind
    await mail_what_is_queued(here)
    get_run_logger().info("Case %s waits for %s (%s)", here.case_id, declared.name,
                          here.wait.key)
    answer = await ask(form_for(here.case_id, here.wait), here.wait.key)
    decision.with_options(task_run_name=run_name(declared, here))(
        here.case_id, here.wait.key, answer)


async def review_the_actions(here: Here, passes: dict[str, int]) -> None:
    """Between reviews the run waits with no form; once the sweep opens a review in this run,
    the reviewer is emailed and asked (the `action-review` step)."""
    if here.wait is None or here.wait.kind != StepKind.ACTION_REVIEW:
        await wait_to_be_woken(here, passes)
        return
    run_id = flow_run.get_id()
    asked = review_wait(here.case_id, here.round, str(run_id) if run_id else None)
    if asked is None:
        return
    wait, _ = asked
    await mail_what_is_queued(here)
    answer = await ask(form_for(here.case_id, wait), wait.key)
    action_review.with_options(task_run_name=run_name(steps.ACTION_REVIEW, here))(
        here.case_id, here.round, wait.key, answer)


async def wait_to_be_woken(here: Here, passes: dict[str, int]) -> None:
    assert here.wait is not None
    await mail_what_is_queued(here)
    get_run_logger().info("Case %s waits in %s (%s)", here.case_id, here.state.value,
                          here.wait.key)
    await suspend(wake_key(here.wait, passes))


async def mail_what_is_queued(here: Here) -> None:
    """Send what the steps queued before the run waits; nothing queued, no task (a replay
    finds the mail already sent)."""
    with session_scope() as session:
        queued = session.exec(select(Outbox.id).where(
            Outbox.case_id == here.case_id, Outbox.status == PENDING)).first()
    if queued is not None:
        await send_mail.with_options(task_run_name=f"send-mail {here.reference}")()


def form_for(case_id: int, wait: Wait) -> type[RunInput]:
    """The form a waiting step needs, rebuilt the same way on every replay (and by the gateway)."""
    with session_scope() as session:
        case = session.get(Case, case_id)
        assert case is not None
        form = form_class(session, case, wait.kind)
    described: type[RunInput] = form.with_initial_data(  # type: ignore[attr-defined]
        description=describe(case_id, wait))
    return described


def _remember_flow_run(case_id: int) -> None:
    run_id = flow_run.get_id()
    if not run_id:
        return
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is not None and case.flow_run_id is None:
            case.flow_run_id = str(run_id)
            session.add(case)


def wake_key(wait: Wait, passes: dict[str, int]) -> str:
    """A fresh suspension key for each pass through the same internal wait.

    A wake that finds nothing changed (a retried wake, or Resume pressed in the UI) replays the
    run to the same wait; Prefect refuses a key it has resumed before and returns at once, so the
    next pass takes the next key, until one that has not fired suspends the run again.
    """
    n = passes.get(wait.key, 0)
    passes[wait.key] = n + 1
    return f"{wait.key}-pass-{n}"
