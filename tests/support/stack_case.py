"""A case driven on a running `rprp up` from a second terminal, as `rprp demo` does:
`python -m tests.support.stack_case start` opens one and leaves it at the fact-finding decision;
`... finish CASE_ID` takes it from there to closure. Prints one JSON line with what it saw.
(tests/integration/test_backup_restore.py runs the two on either side of a backup and restore.)
"""

from __future__ import annotations

import os

from infra.settings import get_settings
from rprp.running import use_running_stack

use_running_stack()  # before Prefect reads its settings, as rprp demo
# ...and with the stack's Prefect credentials, as every rprp command beside it (rprp/cli.py).
os.environ["PREFECT_API_AUTH_STRING"] = (
    get_settings().resolved_data_dir / "prefect-api-auth.key").read_text().strip()

import asyncio  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from uuid import UUID  # noqa: E402

from prefect.client.orchestration import get_client  # noqa: E402
from sqlmodel import select  # noqa: E402

from flows.sweep import rprp_sweep  # noqa: E402
from infra.db import session_scope  # noqa: E402
from models import Action, ActionReview  # noqa: E402
from models.enums import CaseState  # noqa: E402
from tasks.links import read_account_token  # noqa: E402
from tests.support.cases import (  # noqa: E402
    audit_actions,
    case_row,
    decide,
    finished,
    give_account,
    open_case,
    outbox,
    paused_in,
    report_answer,
)
from tests.support.stack import eventually  # noqa: E402

S = CaseState


def account_token(case_id: int) -> str:
    """The token in the officer's emailed account link."""
    notice = next(row for row in outbox(case_id) if row.kind == "officer_notice")
    found = re.search(r"/account/([A-Za-z0-9_.\-]+)", notice.body_text)
    assert found, notice.body_text
    return found.group(1)


async def start() -> dict[str, object]:
    case_id = await open_case()
    await paused_in(case_id, S.AWAITING_ACCOUNT)
    await give_account(case_id, "I was rushing to another call.")
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    return {"case_id": case_id, "flow_run_id": case.flow_run_id,
            "token": account_token(case_id), "audit": audit_actions(case_id)}


async def finish(case_id: int) -> dict[str, object]:
    case = await paused_in(case_id, S.FACT_FINDING_DECISION)
    link_opens = read_account_token(account_token(case_id)) == (case_id, case.notice_round)
    await decide(case_id, choice="No fact-finding needed: go to the discussion")
    await paused_in(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case_id, choice="Discussion held and the officer engaged",
                 held_on=datetime.now(UTC).date().isoformat())
    await paused_in(case_id, S.DISCUSSION_HELD)
    await decide(case_id, **report_answer())
    await paused_in(case_id, S.ACTIONS_MONITORING)
    await rprp_sweep(as_of=datetime.now(UTC) + timedelta(days=92))  # the review falls due

    def review_run() -> UUID | None:
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id)).first()
            return UUID(review.flow_run_id) if review and review.flow_run_id else None

    run_id = await eventually(review_run, 120, "the action-plan review's flow run")

    async def review_paused() -> bool:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
        return bool(run.state and run.state.is_paused())

    await eventually(review_paused, 180, "the action-plan review paused for the reviewer")
    with session_scope() as session:
        action = session.exec(select(Action).where(Action.case_id == case_id)).first()
        assert action is not None
        action_id = action.id
    await decide(case_id, flow_run_id=str(run_id), **{
        f"action_{action_id}_note": "Module completed on time.",
        f"action_{action_id}_outcome": "Completed: close this action"})
    ending = await finished(case_id)
    return {"case_id": case_id, "flow_run_id": case.flow_run_id, "ending": ending,
            "state": case_row(case_id).state.value, "link_opens": link_opens,
            "audit": audit_actions(case_id)}


def main(argv: list[str]) -> int:
    result = asyncio.run(start() if argv[0] == "start" else finish(int(argv[1])))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
