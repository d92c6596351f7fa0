"""`rprp demo`: sample referrals on a running stack, driven down the main paths.

Each case is left paused at a decision a manager or PSD can take by hand in the Prefect UI.
"""

from __future__ import annotations

from rprp.running import use_running_stack

# Find a running `rprp up` before Prefect reads its settings; PREFECT_API_URL wins. The links
# printed below are then the stack's own, whatever ports it runs on.
use_running_stack()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402
from uuid import UUID  # noqa: E402

import httpx  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from sqlmodel import select  # noqa: E402

from infra.db import create_schema, session_scope  # noqa: E402
from infra.settings import get_settings  # noqa: E402
from models import Case, Deadline  # noqa: E402
from models.choices import DiscussionChoice  # noqa: E402
from models.enums import CaseState, DeadlineKind  # noqa: E402
from portal.auth import User  # noqa: E402
from portal.gateway import submit_decision  # noqa: E402
from rprp.meeting_demo import meeting_to_crc  # noqa: E402
from rprp.running import prefect_problem  # noqa: E402
from rprp.samples import referral_data  # noqa: E402
from tasks.calendar import england_and_wales  # noqa: E402
from tasks.casework import mark_no_account, record_account  # noqa: E402
from tasks.intake import ReferralIn, create_case  # noqa: E402
from tasks.links import case_link, flow_run_link  # noqa: E402
from tasks.meeting_links import meeting_page_link  # noqa: E402
from tasks.notify import deliver_pending  # noqa: E402
from tasks.orchestration import start_case_flow, wake_case  # noqa: E402
from tasks.records import lock_case  # noqa: E402

S = CaseState
REVIEWER = "sgt.demo.reviewer@force.example"


def demo_referral(**overrides: Any) -> ReferralIn:
    """The tests' and the bench's sample referral (rprp.samples), naming the demo's reviewer,
    whose sign-in `rprp up` prints, so a person can take the case's decisions in the UI."""
    reviewer = {"name": "Sgt Demo Reviewer", "email": REVIEWER}
    return ReferralIn.model_validate(referral_data(label="demo", reviewer=reviewer, **overrides))


async def wait_paused(case_id: int, state: CaseState, timeout: float = 120) -> Case:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with session_scope() as session:
            case = session.get(Case, case_id)
        assert case is not None
        if case.state is state and case.flow_run_id:
            async with get_client() as client:
                run = await client.read_flow_run(UUID(case.flow_run_id))
            if run.state and run.state.is_paused():
                return case
        await asyncio.sleep(0.5)
    raise TimeoutError(f"case {case_id} did not reach {state.value} in {timeout}s: is the "
                       "worker running (rprp up)?")


async def wait_answered(case_id: int, state: CaseState, timeout: float = 120) -> Case:
    """The step took an answer that keeps the case in `state` (an invitation) and asks again."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with session_scope() as session:
            case = session.get(Case, case_id)
        assert case is not None
        if case.step_answers:
            return await wait_paused(case_id, state, max(end - time.monotonic(), 1))
        await asyncio.sleep(0.5)
    raise TimeoutError(f"case {case_id} did not take the answer in {timeout}s")


async def decide(case: Case, **answer: Any) -> None:
    """The reviewer's decision, through the portal's gateway as the reviewer signed in would."""
    reviewer = User("Sgt Sam Reviewer (demo)", REVIEWER, frozenset({"reviewer"}))
    async with httpx.AsyncClient(timeout=30) as client:
        result = await submit_decision(reviewer, case.flow_run_id or "", answer, client)
    if not result or result.get("status") != "ACCEPT":
        raise RuntimeError(f"the demo's decision was not taken: {result}")


async def new_case(n: int, **overrides: Any) -> Case:
    with session_scope() as session:
        case, _ = create_case(session, demo_referral(**overrides), actor="demo",
                              idempotency_key=f"demo-{time.time_ns()}-{n}")
    assert case.id is not None
    await start_case_flow(case.id)
    return await wait_paused(case.id, S.AWAITING_ACCOUNT)


async def give_account(case: Case) -> Case:
    assert case.id is not None
    record_account(case.id, case.notice_round, "Demo account: I was rushing to another call.")
    await wake_case(case.id)
    return await wait_paused(case.id, S.FACT_FINDING_DECISION)


async def account_given(n: int) -> Case:
    return await give_account(await new_case(n))


async def account_missed(n: int) -> Case:
    """What the sweep does the morning after the deadline, for this case only: a sweep as of a
    future day would also pass the deadlines of every other case waiting for an account."""
    case = await new_case(n)
    assert case.id is not None
    with session_scope() as session:
        due = session.exec(select(Deadline).where(
            Deadline.case_id == case.id, Deadline.kind == DeadlineKind.ACCOUNT)).one().due_at
        assert mark_no_account(session, lock_case(session, case.id),
                               due.replace(tzinfo=UTC) + timedelta(hours=8))
    await wake_case(case.id)
    return await wait_paused(case.id, S.FACT_FINDING_DECISION)


async def referral_back(n: int) -> Case:
    case = await give_account(await new_case(n))
    await decide(case, choice="Substantial new evidence: refer back to PSD",
                 reasons="Demo: body-worn video shows more")
    assert case.id is not None
    return await wait_paused(case.id, S.REFERRED_BACK)


async def non_engagement(n: int) -> Case:
    case = await give_account(await new_case(n))
    await decide(case, choice="No fact-finding needed: go to the discussion")
    assert case.id is not None
    case_id = case.id
    case = await wait_paused(case_id, S.DISCUSSION_SCHEDULING)
    meeting_day = england_and_wales().add_working_days(date.today(), 1)
    await decide(case, choice=DiscussionChoice.INVITE.value, meeting_date=meeting_day.isoformat(),
                 meeting_time="10:00", place="Interview room 2, Central police station")
    case = await wait_answered(case_id, S.DISCUSSION_SCHEDULING)
    await decide(case, choice="Officer did not attend")
    return await wait_paused(case_id, S.NON_ENGAGEMENT_REVIEW)


PATHS = {
    "account given": account_given,
    "account missed": account_missed,
    "referral back": referral_back,
    "non-engagement": non_engagement,
}


async def main() -> int:
    from portal.users import demo_sign_ins_text, ensure_demo_users

    create_schema()
    ensure_demo_users()
    print("\n".join(demo_sign_ins_text()) + "\n")
    print(f"Prefect API: {PREFECT_API_URL.value()}")
    print(f"Decide as reviewer with: {REVIEWER}; as PSD with: "
          f"{sorted(get_settings().decision_makers)[0]}\n")
    cases = await asyncio.gather(*(path(n) for n, path in enumerate(PATHS.values(), 1)))
    meeting = await meeting_to_crc()
    await deliver_pending()
    for label, case in zip(PATHS, cases, strict=True):
        assert case.id is not None
        print(f"{case.reference}  {label:<15} now {case.state.value}")
        print(f"    Prefect UI: {flow_run_link(case.flow_run_id)}")
        print(f"    Portal:     {case_link(case.id)}")
    assert meeting.id is not None
    print(f"{meeting.reference}   reflective practice meeting, now {meeting.state.value} "
          "(the Case Review Committee's step)")
    print(f"    Prefect UI: {flow_run_link(meeting.flow_run_id)} (sign in as "
          "crc-chair@partnership.example to decide)")
    print(f"    Portal:     {meeting_page_link(meeting.id)} (sign in as "
          "facilitator@partnership.example)")
    print(f"\nAs of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC each case waits for a person: open "
          "its Prefect UI link and press Resume.")
    return 0


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rprp demo", description=__doc__)
    parser.parse_args(argv)
    problem = prefect_problem("rprp demo", PREFECT_API_URL.value())
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return asyncio.run(main())
