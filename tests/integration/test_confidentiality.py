"""The officer's account and the discussion summary are confidential by law: not a byte of
either reaches Prefect (its database files, WAL included, or a dump of its PostgreSQL database),
its logs or any email, with the case carried through the gateway to closure."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from flows.sweep import rprp_sweep
from models import Action, ActionReview, Report
from models.enums import CaseState
from rprp.db import session_scope
from rprp.mailsink import read_messages
from tests.support.cases import (
    case_row,
    decide,
    finished,
    give_account,
    open_case,
    outbox,
    paused_in,
    report_answer,
)
from tests.support.stack import eventually

S = CaseState
ACCOUNT_MARKER = "ZX-CONFIDENTIAL-ACCOUNT-7731"
DISCUSSION_MARKER = "QK-SEALED-DISCUSSION-4409"
pytestmark = [pytest.mark.integration]


def prefect_bytes(prefect_server) -> bytes:  # type: ignore[no-untyped-def]
    """Every byte Prefect stored: its SQLite files (WAL included) or a dump of its database."""
    if prefect_server.database_url:
        url = prefect_server.database_url.replace("+asyncpg", "")
        return subprocess.run(["pg_dump", "--data-only", url], capture_output=True,
                              check=True, timeout=120).stdout
    files = [p for p in Path(prefect_server.home).rglob("prefect.db*") if p.is_file()]
    assert files, "Prefect's SQLite files exist: the search would be empty otherwise"
    return b"".join(p.read_bytes() for p in files)


async def test_no_confidential_byte_reaches_prefect_logs_or_emails(
        stack, mail_sink, session_dir, prefect_server) -> None:  # type: ignore[no-untyped-def]
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, f"My account, with the marker {ACCOUNT_MARKER}, of the stop.")
    await paused_in(case_id, S.FACT_FINDING_DECISION)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer(
        discussion_summary=f"We discussed the stop and welfare: {DISCUSSION_MARKER}."))
    await paused_in(case_id, S.ACTIONS_MONITORING)
    with session_scope() as session:
        report = session.exec(select(Report).where(Report.case_id == case_id)).one()
        action = session.exec(select(Action).where(Action.case_id == case_id)).one()
    assert DISCUSSION_MARKER in report.discussion_summary  # the case DB has it, from the seal

    await rprp_sweep(as_of=datetime.now(UTC) + timedelta(days=92))

    def review_run() -> str | None:
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id)).one()
            return review.flow_run_id

    run = await eventually(review_run, 60, "the review run")
    await eventually(lambda: _decided(case_id, str(run), action.id), 90, "the review decided")
    assert await finished(case_id) == "Completed"
    assert case_row(case_id).state is S.CLOSED_COMPLETE

    haystacks = [prefect_bytes(prefect_server)]
    haystacks += [p.read_bytes() for p in Path(session_dir).rglob("*.log") if p.is_file()]
    messages = read_messages(mail_sink.directory)
    assert messages
    haystacks += [(m.text + (m.html or "") + m.subject).encode() for m in messages]
    haystacks += [(r.body_text + r.body_html).encode() for r in outbox(case_id)]
    assert any(b"rprp-case" in h for h in haystacks), "Prefect's records were searched"
    for marker in (ACCOUNT_MARKER, DISCUSSION_MARKER):
        assert [h.find(marker.encode()) for h in haystacks if marker.encode() in h] == []
    assert os.environ.get("PREFECT_API_AUTH_STRING")  # the server ran with its credentials


async def _decided(case_id: int, run: str, action_id: int | None) -> bool:
    from tests.support.cases import submit

    result = await submit(case_id, flow_run_id=run, **{
        f"action_{action_id}_note": "Module completed.",
        f"action_{action_id}_outcome": "Completed: close this action"})
    return result["status"] == "ACCEPT"
