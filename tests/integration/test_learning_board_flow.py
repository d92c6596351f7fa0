"""The `rprp-learning-board` flow against a real Prefect server and SMTP server: on the month's
first working day it keeps the previous month's pack and emails each board member once, however
often it runs; on another day it does nothing. Each step is a task run of its own name.

The flow runs in the test process (as the sweep's test runs the sweep); time moves by `as_of`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType, TaskRun

from flows.learning_board import BUILD_PACK, DELIVER_MAIL, EMAIL_MEMBERS, rprp_learning_board
from infra.db import session_scope
from infra.mailsink import read_messages
from infra.settings import reset_settings
from tasks import learning_board as board
from tasks.calendar import LONDON
from tasks.learning_board import Month
from tests.support.board import OFFICER_NAME, seed_board_month
from tests.support.stack import eventually

pytestmark = [pytest.mark.integration]
MONTH = Month(2036, 3)  # the seeded March, two years on
BOARD_DAY = date(2036, 4, 1)  # a Tuesday
MEMBERS = ["chair.board@force.example", "dci.learning@force.example"]


@pytest.fixture
def members(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RPRP_LEARNING_BOARD_MEMBERS", ", ".join(MEMBERS))
    reset_settings()
    yield
    monkeypatch.delenv("RPRP_LEARNING_BOARD_MEMBERS")
    reset_settings()


def at(day: date, hhmm: tuple[int, int] = (7, 30)) -> datetime:
    return datetime.combine(day, time(*hhmm), tzinfo=LONDON)


def received(mail_sink) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(m.recipients[0] for m in read_messages(mail_sink.directory)
                  if m.headers.get("X-RPRP-Outbox-Key", "").startswith(
                      f"learning-board:{MONTH.key}:"))


async def task_runs(flow_run_id: UUID, expected: int) -> list[TaskRun]:
    async def recorded() -> list[TaskRun] | None:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = len(runs) == expected and all(r.state and r.state.is_final() for r in runs)
        return sorted(runs, key=lambda r: r.start_time or r.expected_start_time) if done else None

    return await eventually(recorded, 30, "the board's task runs in Prefect")  # type: ignore[return-value]


async def test_the_pack_is_emailed_once_however_often_the_flow_runs(
        deployments: str, mail_sink, members: None) -> None:  # type: ignore[no-untyped-def]
    seed_board_month(tag="lbf", years=2)
    assert board.is_board_day(BOARD_DAY)

    state = await rprp_learning_board(as_of=at(BOARD_DAY), return_state=True)
    assert state.is_completed(), state.message
    summary = await state.result()  # type: ignore[func-returns-value]
    assert summary["month"] == MONTH.key and summary["built"] is True
    assert summary["emails_queued"] == 2 and summary["sent"] >= 2
    assert received(mail_sink) == MEMBERS
    runs = await task_runs(state.state_details.flow_run_id, 3)  # type: ignore[arg-type]
    assert [r.name for r in runs] == [f"{BUILD_PACK} {MONTH.key}", f"{EMAIL_MEMBERS} {MONTH.key}",
                                      DELIVER_MAIL]
    assert all(r.state_type is StateType.COMPLETED for r in runs)

    # Again the same morning, and again later that day: the pack is found, nothing is sent.
    again = await rprp_learning_board(as_of=at(BOARD_DAY))
    assert again["built"] is False and again["emails_queued"] == 0
    later = await rprp_learning_board(as_of=at(BOARD_DAY, (16, 0)))
    assert later["emails_queued"] == 0
    assert received(mail_sink) == MEMBERS

    # The email is figures and a link; the page's pack is the one the email was built from.
    (message, *_) = [m for m in read_messages(mail_sink.directory)
                     if m.headers.get("X-RPRP-Outbox-Key", "").startswith(
                         f"learning-board:{MONTH.key}:")]
    body = message.text + message.html
    assert "/learning/board/2036-03" in body and "Cases referred: 3" in message.text
    assert OFFICER_NAME not in body and "Seeded lesson" not in body
    with session_scope() as session:
        pack = board.pack_of(session, MONTH)
        assert pack is not None and pack.as_of == BOARD_DAY
        figures = board.figures_of(pack)
    assert figures.reports_filed == summary["reports_filed"] == 2
    assert figures.cases_referred == summary["cases_referred"] == 3


async def test_another_day_of_the_schedule_does_nothing(deployments: str, mail_sink,  # type: ignore[no-untyped-def]
                                                        members: None) -> None:
    day = date(2037, 6, 2)  # Tue 2 June 2037: Mon 1 June was the board's day
    assert board.is_board_day(date(2037, 6, 1)) and not board.is_board_day(day)
    summary = await rprp_learning_board(as_of=at(day))
    assert summary["skipped"] == "not the month's first working day"
    with session_scope() as session:
        assert board.pack_of(session, Month(2037, 5)) is None


async def test_a_month_can_be_prepared_on_purpose_without_members(
        deployments: str, mail_sink) -> None:  # type: ignore[no-untyped-def]
    summary = await rprp_learning_board(as_of=at(date(2037, 6, 2)), month="2035-10")
    assert summary["month"] == "2035-10" and summary["emails_queued"] == 0
    assert summary["no_cases"] is True
