"""In-flight cases across a code change, against a real Prefect server and real workers.

Cases start under this checkout's code and suspend at each kind of wait the steps have (the
officer's account, each person's decision, PSD's quality check, the action plan between
reviews and at a review). Then a changed copy of the code is deployed under the same deployment
names and run by a worker started from it (tests/support/flow_change.py: a step inserted, a
task renamed, a form field added with a default, a waiting step retired with its rule), and
every case is resumed and carried to its end under the new code. docs/changing-the-flow.md.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import arun_deployment
from prefect.input.actions import afilter_flow_run_input
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import Action, AuditEvent
from models.enums import CaseState
from models.forms import FORMS
from rprp.prefect_server import register_deployments
from tasks.code_version import source_version
from tasks.orchestration import start_action_review_flow, suspension
from tests.support.cases import (
    AS_PSD,
    case_row,
    decide,
    finished,
    give_account,
    open_case,
    paused_in,
    report_answer,
    submit,
)
from tests.support.flow_change import (
    RETIRED_REASON,
    DiscussionOutcomeWithInterpreter,
    changed_copy,
    deploy_from,
)
from tests.support.stack import ROOT, Worker, eventually, flow_run_state

S = CaseState
pytestmark = [pytest.mark.long(seconds=90), pytest.mark.integration]
ACCOUNT = "My account of what happened at the stop."


@dataclass
class Installation:
    """The session's worker as the current code's, and the changed code, ready to deploy."""

    old: Worker
    changed_root: Path
    log_dir: Path
    monkeypatch: pytest.MonkeyPatch
    new: Worker | None = None

    async def deploy_the_change(self) -> str:
        """Drain and stop the current code's worker, deploy the changed copy and start its
        worker, and give the portal (here, this process's gateway) the changed form; the
        deployment's new version."""
        self.monkeypatch.setitem(FORMS, "DiscussionOutcome",
                                 lambda _: DiscussionOutcomeWithInterpreter)
        await self.old.drain()
        self.old.stop()
        deploy_from(self.changed_root, self.log_dir / "deploy-changed.log")
        env = dict(self.old.env, PYTHONPATH=str(self.changed_root))
        self.new = Worker(env=env, log_path=self.log_dir / "worker-changed.log",
                          root=self.changed_root)
        self.new.start()
        return await deployment_version()


@pytest.fixture
async def installation(stack: Worker, session_dir: Path, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Installation]:
    """PSD checks every report here (so the quality check is one of the waits); afterwards the
    session's deployments and worker are this checkout's again."""
    before = dict(stack.env)
    stack.stop()
    stack.env["RPRP_REPORT_QUALITY_CHECK"] = "always"
    monkeypatch.setenv("RPRP_REPORT_QUALITY_CHECK", "always")
    reset_settings()
    stack.start()
    changed = changed_copy(tmp_path / "changed")
    here = Installation(stack, changed, session_dir, monkeypatch)
    yield here
    if here.new is not None:
        here.new.stop()
    stack.stop()
    register_deployments(dict(os.environ), session_dir)
    stack.env.clear()
    stack.env.update(before)
    monkeypatch.undo()
    reset_settings()
    stack.start()


async def deployment_version() -> str:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("rprp-case/rprp-case")
    return deployment.version or ""


# -- to each wait, under the current code -----------------------------------------------------

async def at_account() -> int:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    return case_id


async def at_fact_finding_decision() -> int:
    case_id = await at_account()
    await give_account(case_id, ACCOUNT)
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    return case_id


async def at_fact_finding_outcome() -> int:
    case_id = await at_fact_finding_decision()
    await decide(case_id, choice="Fact-finding needed")
    await paused_in(case_id, S.FACT_FINDING)
    return case_id


async def at_authority_decision() -> int:
    case_id = await at_fact_finding_decision()
    await decide(case_id, choice="Substantial new evidence: refer back to PSD",
                 reasons="CCTV shows more")
    await paused_in(case_id, S.REFERRED_BACK)
    return case_id


async def at_discussion() -> int:
    case_id = await at_fact_finding_decision()
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    return case_id


def today() -> str:
    return datetime.now(UTC).date().isoformat()


async def at_non_engagement() -> int:
    case_id = await at_discussion()
    await decide(case_id, choice="Officer attended but did not engage", held_on=today())
    await paused_in(case_id, S.NON_ENGAGEMENT_REVIEW)
    return case_id


async def at_report() -> int:
    case_id = await at_discussion()
    await decide(case_id, choice="Discussion held and the officer engaged", held_on=today())
    await paused_in(case_id, S.DISCUSSION_HELD)
    return case_id


async def at_quality_check() -> int:
    case_id = await at_report()
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.REPORT_QUALITY_CHECK)
    return case_id


async def at_monitoring() -> int:
    case_id = await at_quality_check()
    await accept_report(case_id)
    return case_id


async def at_action_review() -> int:
    """What the sweep does when the review falls due: the case's run asks the review."""
    case_id = await at_monitoring()
    await start_action_review_flow(case_id, 1)
    await review_asked(case_id)
    return case_id


WAITS: dict[str, Callable[[], Awaitable[int]]] = {
    "account": at_account, "fact-finding-decision": at_fact_finding_decision,
    "fact-finding-outcome": at_fact_finding_outcome, "authority": at_authority_decision,
    "discussion": at_discussion, "non-engagement": at_non_engagement, "report": at_report,
    "quality-check": at_quality_check, "monitoring": at_monitoring,
    "action-review": at_action_review,
}


# -- on to the end, under the changed code ----------------------------------------------------

async def accept_report(case_id: int) -> None:
    await decide(case_id, AS_PSD, choice="Accept: file the report to the appropriate authority")
    await paused_in(case_id, S.ACTIONS_MONITORING)


async def review_asked(case_id: int) -> None:
    run = case_row(case_id).flow_run_id or ""

    async def asked() -> bool:
        waiting = await suspension(run)
        return bool(waiting and waiting.form and waiting.form_saved)

    await eventually(asked, what=f"case {case_id}'s run to ask the action-plan review")


async def close_actions(case_id: int) -> None:
    with session_scope() as session:
        action_ids = [a.id for a in session.exec(select(Action).where(Action.case_id == case_id))]
    await decide(case_id, **{answer: value for action_id in action_ids for answer, value in (
        (f"action_{action_id}_note", "Module completed on time."),
        (f"action_{action_id}_outcome", "Completed: close this action"))})


async def review_and_close(case_id: int) -> None:
    await start_action_review_flow(case_id, 1)
    await review_asked(case_id)
    await close_actions(case_id)


async def refer_back_then_no_further_action(case_id: int) -> None:
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="Substantial new evidence: refer back to PSD",
                 reasons="CCTV shows more")
    await no_further_action(case_id)


async def no_further_action(case_id: int) -> None:
    await paused_in(case_id, S.REFERRED_BACK)
    await decide(case_id, AS_PSD, choice="No further action", reasons="AA reassessed severity")


async def formal_proceedings(case_id: int) -> None:
    await paused_in(case_id, S.NON_ENGAGEMENT_REVIEW)
    await decide(case_id, AS_PSD, choice="Formal (misconduct) proceedings",
                 reasons="Refused to engage")


async def did_not_engage_then_formal_proceedings(case_id: int, **new_fields: str) -> None:
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Officer attended but did not engage", held_on=today(),
                 **new_fields)
    await formal_proceedings(case_id)


async def old_form_answered_then_formal_proceedings(case_id: int) -> None:
    """Asked before the change, so its form has no interpreter field: filling one in is refused
    with the reason, and the answer the form can take goes through."""
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    refused = await submit(case_id, choice="Officer attended but did not engage",
                           held_on=today(), interpreter="Welsh")
    assert refused["status"] == "REJECT"
    assert "earlier version of its form" in refused["details"]["reason"], refused
    await did_not_engage_then_formal_proceedings(case_id)


async def sweep_now_under_the_changed_code() -> None:
    """The sweep's deployment, run now by the changed code's worker: its resume-cases duty
    resumes the runs waiting on the retired step."""
    run = await arun_deployment("rprp-sweep/rprp-sweep", timeout=0, as_subflow=False,
                                parameters={"as_of": datetime.now(UTC).isoformat()})

    async def ended() -> bool:
        return await flow_run_state(str(run.id)) in {"Completed", "Failed", "Crashed"}

    await eventually(ended, what="the sweep to finish")
    assert await flow_run_state(str(run.id)) == "Completed"


async def retired_step_moved_on(case_id: int) -> None:
    await sweep_now_under_the_changed_code()
    await did_not_engage_then_formal_proceedings(case_id, interpreter="Welsh")


async def report_checked_and_reviewed(case_id: int) -> None:
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.REPORT_QUALITY_CHECK)
    await accept_report(case_id)
    await review_and_close(case_id)


async def accepted_and_reviewed(case_id: int) -> None:
    await accept_report(case_id)
    await review_and_close(case_id)


async def account_then_referred_back(case_id: int) -> None:
    await give_account(case_id, ACCOUNT)
    await refer_back_then_no_further_action(case_id)


ON_TO_THE_END: dict[str, tuple[Callable[[int], Awaitable[None]], CaseState]] = {
    "account": (account_then_referred_back, S.CLOSED_NFA),
    "fact-finding-decision": (refer_back_then_no_further_action, S.CLOSED_NFA),
    "fact-finding-outcome": (retired_step_moved_on, S.ESCALATED_MISCONDUCT),
    "authority": (no_further_action, S.CLOSED_NFA),
    "discussion": (old_form_answered_then_formal_proceedings, S.ESCALATED_MISCONDUCT),
    "non-engagement": (formal_proceedings, S.ESCALATED_MISCONDUCT),
    "report": (report_checked_and_reviewed, S.CLOSED_COMPLETE),
    "quality-check": (accepted_and_reviewed, S.CLOSED_COMPLETE),
    "monitoring": (review_and_close, S.CLOSED_COMPLETE),
    "action-review": (close_actions, S.CLOSED_COMPLETE),
}


# -- what the record shows --------------------------------------------------------------------

def events(case_id: int) -> list[AuditEvent]:
    with session_scope() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)
                                 .order_by(AuditEvent.id)))  # type: ignore[arg-type]


async def task_run_names(flow_run_id: str) -> list[str]:
    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(flow_run_id)])), limit=200)
    return [r.name for r in runs]


async def discussion_form_fields(flow_run_id: str) -> set[str]:
    """The fields of the discussion forms this run has asked, as Prefect stored them."""
    inputs = await afilter_flow_run_input(key_prefix="suspended-discussion-scheduling",
                                          flow_run_id=UUID(flow_run_id), limit=50)
    fields: set[str] = set()
    for found in inputs:
        if found.key.endswith("-schema"):
            fields |= set(json.loads(found.value).get("properties", {}))
    return fields


async def test_cases_waiting_at_each_kind_of_wait_finish_under_a_changed_flow(
        installation: Installation) -> None:
    old_version = source_version(ROOT)
    new_version = source_version(installation.changed_root)
    assert new_version != old_version
    old_deployment = await deployment_version()

    ids = await asyncio.gather(*(reach() for reach in WAITS.values()))
    cases = dict(zip(WAITS, ids, strict=True))
    discussion_fields_before = await discussion_form_fields(
        case_row(cases["discussion"]).flow_run_id or "")
    assert discussion_fields_before and "interpreter" not in discussion_fields_before

    new_deployment = await installation.deploy_the_change()
    assert new_deployment and new_deployment != old_deployment
    changed_at = max(e.id or 0 for c in ids for e in events(c))

    await asyncio.gather(*(ON_TO_THE_END[wait][0](case_id) for wait, case_id in cases.items()))
    for wait, case_id in cases.items():
        assert await finished(case_id) == "Completed", wait
        assert case_row(case_id).state is ON_TO_THE_END[wait][1], wait

    # Every step after the change ran under the new code, and said so; those before, the old.
    for wait, case_id in cases.items():
        trail = events(case_id)
        after = [(e.flow_version, e.deployment_version) for e in trail
                 if (e.id or 0) > changed_at and e.flow_version]
        assert after and set(after) == {(new_version, new_deployment)}, wait
        before = {e.flow_version for e in trail if (e.id or 0) <= changed_at}
        assert before <= {old_version, None}, wait
    assert {e.flow_version for e in events(cases["action-review"]) if e.flow_version} == {
        old_version, new_version}

    # The retired step: moved on by its rule, once, under the new code.
    retired = [e for e in events(cases["fact-finding-outcome"])
               if e.action == "step_retired:fact_finding"]
    assert [(e.to_state, e.detail, e.flow_version) for e in retired] == [
        ("discussion_scheduling", RETIRED_REASON, new_version)]
    retired_run = case_row(cases["fact-finding-outcome"]).flow_run_id or ""
    assert any(n.startswith("move-off-retired-step ") for n in await task_run_names(retired_run))

    # The renamed task: the authority's decision ran as the new name.
    authority_tasks = await task_run_names(case_row(cases["authority"]).flow_run_id or "")
    assert any(n.startswith("appropriate-authority-decision ") for n in authority_tasks)
    assert not any(n.startswith("refer-back-to-psd ") for n in authority_tasks)

    # The inserted step: once for each report filed under the new code, never for the others.
    told = {wait: [e.action for e in events(c)].count("learning_lead_told")
            for wait, c in cases.items()}
    assert told == {wait: int(wait in ("report", "quality-check")) for wait in cases}

    # The new field: the forms asked under the new code have it; the answer given through the
    # portal on the new code to the form asked before the change (without it) was applied.
    migrated_fields = await discussion_form_fields(retired_run)
    assert "interpreter" in migrated_fields
    discussion_trail = [e.action for e in events(cases["discussion"])]
    assert "discussion_outcome:DID_NOT_ENGAGE" in discussion_trail
    assert not any(a.startswith("decision_rejected") for c in ids
                   for a in (e.action for e in events(c)))
