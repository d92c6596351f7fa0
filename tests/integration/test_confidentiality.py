"""The officer's account is confidential by law: it may not reach Prefect or any email."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.input.actions import afilter_flow_run_input

from models.enums import CaseState
from rprp.mailsink import read_messages
from tests.support.cases import (
    REVIEWER,
    case_row,
    decide,
    give_account,
    open_case,
    outbox,
    paused_in,
    report_answer,
)

S = CaseState
MARKER = "ZX-CONFIDENTIAL-ACCOUNT-7731"
pytestmark = [pytest.mark.integration]


async def test_the_account_reaches_no_prefect_record_and_no_email(stack, mail_sink,
                                                                  session_dir) -> None:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, f"My account, with the marker {MARKER}, of the stop.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion",
                 decided_by=REVIEWER)
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat(), decided_by=REVIEWER)
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.ACTIONS_MONITORING)
    flow_run_id = UUID(case_row(case_id).flow_run_id or "")

    seen: list[str] = []
    async with get_client() as client:
        runs = await client.read_flow_runs()
        seen += [repr(r.parameters) + repr(r.state) for r in runs]
        tasks = await client.read_task_runs()
        seen += [repr(t.state) + repr(t.task_inputs) for t in tasks]
        logs = await client.read_logs()
        seen += [log.message for log in logs]
        assert logs, "the flow wrote logs: the check would be empty otherwise"
    inputs = await afilter_flow_run_input(key_prefix="suspended-", flow_run_id=flow_run_id,
                                          limit=1000)
    descriptions = [i.value for i in inputs if i.key.endswith("-description")]
    assert descriptions, "pause descriptions exist: the check would be empty otherwise"
    seen += [i.value for i in inputs]
    seen.append((session_dir / "worker.log").read_text(errors="replace"))

    messages = read_messages(mail_sink.directory)
    assert messages
    seen += [m.text + (m.html or "") + m.subject for m in messages]
    seen += [r.body_text + r.body_html for r in outbox(case_id)]

    leaks = [s[:200] for s in seen if MARKER in s]
    assert leaks == []
    # The report's discussion summary left Prefect once it was in the case DB.
    responses = [i for i in inputs if i.key.endswith("-response") and "discussion_summary" in i.value]
    assert responses == []
