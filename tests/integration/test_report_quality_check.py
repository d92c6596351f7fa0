"""PSD's quality check through real flow runs: with the force's policy set to `always`, the
reviewer's report pauses the case's run on `report-quality-check`; PSD returns it once (the run
asks `file-report` again), then accepts it, and only then is the report filed and the action
plan monitored. A real Prefect server and process worker, restarted with the policy set."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from sqlmodel import select

from infra.db import session_scope
from infra.settings import reset_settings
from models import Report
from models.choices import KEEP_DISCUSSION_SUMMARY
from models.enums import CaseState
from tests.support.cases import (
    AS_PSD,
    case_row,
    decide,
    give_account,
    open_case,
    paused_in,
    report_answer,
)
from tests.support.stack import Worker

S = CaseState
pytestmark = [pytest.mark.integration]


@pytest.fixture
def checking_worker(stack: Worker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """The worker (and this process) with RPRP_REPORT_QUALITY_CHECK=always; put back after."""
    before = stack.env.get("RPRP_REPORT_QUALITY_CHECK")
    stack.stop()
    stack.env["RPRP_REPORT_QUALITY_CHECK"] = "always"
    monkeypatch.setenv("RPRP_REPORT_QUALITY_CHECK", "always")
    reset_settings()
    stack.start()
    yield stack
    stack.stop()
    if before is None:
        stack.env.pop("RPRP_REPORT_QUALITY_CHECK", None)
    else:
        stack.env["RPRP_REPORT_QUALITY_CHECK"] = before
    monkeypatch.undo()
    reset_settings()
    stack.start()


def filed(case_id: int) -> bool:
    with session_scope() as session:
        return session.exec(select(Report).where(Report.case_id == case_id)).first() is not None


async def test_psd_returns_the_report_once_then_accepts_it_in_the_cases_run(
        checking_worker: Worker) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "I accept I was abrupt; I was rushing to another call.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer(force_lessons="Tbc"))
    await paused_in(case_id, S.REPORT_QUALITY_CHECK)
    assert not filed(case_id)

    await decide(case_id, AS_PSD, choice="Return it to the reviewer with comments",
                 comments="Say what line management should learn, or write None.")
    await paused_in(case_id, S.DISCUSSION_HELD)
    assert not filed(case_id)
    await decide(case_id, **report_answer(discussion_summary=KEEP_DISCUSSION_SUMMARY))
    await paused_in(case_id, S.REPORT_QUALITY_CHECK)
    await decide(case_id, AS_PSD, choice="Accept: file the report to the appropriate authority")
    await paused_in(case_id, S.ACTIONS_MONITORING)
    assert filed(case_id)

    case = case_row(case_id)
    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[UUID(case.flow_run_id or "")])))
    names = [r.name for r in sorted(runs, key=lambda r: r.start_time or r.expected_start_time)
             if not r.name.startswith("send-mail")]
    ref = case.reference
    assert names[names.index(f"file-report {ref} r1"):] == [
        f"file-report {ref} r1", f"report-quality-check {ref} r1",
        f"file-report {ref} r1", f"report-quality-check {ref} r1",
        f"schedule-action-review {ref} r1",
    ]
