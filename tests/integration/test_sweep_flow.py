"""The `rprp-sweep` flow against a real Prefect server and SMTP server: each duty is a task run
of its own name in the run graph, and a duty that fails is a Failed task run while the others,
and the mail, still do their work; the run then ends Failed, naming the duty and nothing else.

The flow runs in the test process (as `rprp sweep` runs it), so a duty is made to fail by
replacing its function in `tasks.deadline_sweep.DUTIES`; the cases, the Prefect API and the
SMTP server are real. Time moves by `as_of`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, date, datetime, time
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import StateType, TaskRun
from prefect.states import Paused
from sqlmodel import select

from flows.sweep import SweepFailed, rprp_sweep
from infra.db import session_scope
from infra.mailsink import read_messages
from models import Deadline
from models.enums import DeadlineKind
from tasks import deadline_sweep, orchestration
from tasks.calendar import LONDON
from tasks.casework import advance
from tasks.deadline_sweep import COMPLAINANT_LETTERS, DELIVER_MAIL, SweepReport
from tasks.intake import create_case
from tests.support.cases import PSD, sample_referral
from tests.support.stack import eventually

pytestmark = [pytest.mark.integration]
SECRET = "Jo Public of 1 Secret Street"


def served_case() -> tuple[int, date]:
    """A case awaiting the account, and the London day its deadline falls on."""
    with session_scope() as session:
        case, _ = create_case(session, sample_referral(), actor=PSD)
        case_id = case.id
    assert case_id is not None
    advance(case_id)
    with session_scope() as session:
        due_at = session.exec(select(Deadline).where(
            Deadline.case_id == case_id, Deadline.kind == DeadlineKind.ACCOUNT)).one().due_at
    return case_id, due_at.replace(tzinfo=UTC).astimezone(LONDON).date()


def at_seven(day: date) -> datetime:
    return datetime.combine(day, time(7), tzinfo=LONDON)


def reminders_received(mail_sink, case_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.recipients[0] for m in read_messages(mail_sink.directory)
            if m.headers.get("X-RPRP-Outbox-Key", "").startswith(f"{case_id}:account_reminder:")]


async def task_runs(flow_run_id: UUID) -> list[TaskRun]:
    """The run's task runs in the order they ran, once Prefect has recorded every one finished
    (the engine reports them as events, a moment after the flow returns)."""

    async def recorded() -> list[TaskRun] | None:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        done = len(runs) == len(EVERY_TASK) and all(r.state and r.state.is_final() for r in runs)
        return sorted(runs, key=lambda r: r.start_time or r.expected_start_time) if done else None

    return await eventually(recorded, 30, "the sweep's task runs in Prefect")  # type: ignore[return-value]


def duty_of(run: TaskRun) -> str:
    return run.name.split(" as of ")[0]


EVERY_TASK = [duty.name for duty in deadline_sweep.DUTIES] + [DELIVER_MAIL]


async def test_each_duty_is_a_task_run_of_its_own_name(deployments: str, mail_sink) -> None:  # type: ignore[no-untyped-def]
    case_id, due_day = served_case()
    state = await rprp_sweep(as_of=at_seven(due_day), return_state=True)
    assert state.is_completed(), state.message
    runs = await task_runs(state.state_details.flow_run_id)  # type: ignore[arg-type]
    assert [duty_of(r) for r in runs] == EVERY_TASK
    assert all(r.state_type is StateType.COMPLETED for r in runs)
    assert runs[0].name == f"account-reminders as of {due_day:%Y-%m-%d} 07:00"
    assert len(reminders_received(mail_sink, case_id)) == 1

    # Idempotent: the same instant again finds nothing left to send.
    again = await rprp_sweep(as_of=at_seven(due_day))
    assert again["reminders"] == 0 and len(reminders_received(mail_sink, case_id)) == 1


async def test_a_failing_complainant_letter_duty_leaves_the_reminders_sent_and_is_reported(
        deployments: str, mail_sink, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    case_id, due_day = served_case()

    def broken(as_of: datetime, report: SweepReport) -> None:
        raise RuntimeError(SECRET)  # what a broken record's text might put in an error

    monkeypatch.setattr(deadline_sweep, "DUTIES", tuple(
        replace(d, run=broken) if d.name == COMPLAINANT_LETTERS else d
        for d in deadline_sweep.DUTIES))

    state = await rprp_sweep(as_of=at_seven(due_day), return_state=True)
    assert state.is_failed()
    assert "Sweep duties failed: complainant-letters" in (state.message or "")
    failure = await state.result(raise_on_failure=False)  # type: ignore[func-returns-value]
    assert isinstance(failure, SweepFailed) and failure.failed == [COMPLAINANT_LETTERS]
    assert failure.summary["errors"] == [
        "complainant-letters: the duty failed (RuntimeError); the other duties ran"]
    assert failure.summary["reminders"] == 1

    # The duties after it did their work, and the mail went.
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    runs = {duty_of(r): r.state_type for r in await task_runs(flow_run_id)}
    assert list(runs) == EVERY_TASK
    assert runs.pop(COMPLAINANT_LETTERS) is StateType.FAILED
    assert set(runs.values()) == {StateType.COMPLETED}
    assert len(reminders_received(mail_sink, case_id)) == 1

    # Prefect was told which duty failed, never what the error said.
    async def logged() -> list[str] | None:
        async with get_client() as client:
            logs = await client.read_logs(LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        messages = [log.message for log in logs]
        return messages if any("Sweep duties failed" in m for m in messages) else None

    messages = await eventually(logged, 30, "the sweep's logs in Prefect")
    assert any(m.startswith("complainant-letters: the duty failed") for m in messages)
    assert not [m for m in messages if SECRET in m]
    assert SECRET not in (state.message or "")


def test_rprp_sweep_prints_each_failed_duty_and_exits_1(
        deployments: str, mail_sink, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        capsys: pytest.CaptureFixture[str]) -> None:
    """`rprp sweep` run in-process with the same fault: the summary on stdout, then each error
    and the failed duties on stderr, exit status 1; the reminder still went."""
    from rprp.commands import sweep as command

    case_id, due_day = served_case()

    def broken(as_of: datetime, report: SweepReport) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(deadline_sweep, "DUTIES", tuple(
        replace(d, run=broken) if d.name == COMPLAINANT_LETTERS else d
        for d in deadline_sweep.DUTIES))
    assert command.run(["--as-of", f"{due_day.isoformat()}T07:00"]) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out[out.index("{"):])
    assert summary["reminders"] == 1 and summary["sent"] >= 1
    assert ("rprp sweep: error: complainant-letters: the duty failed (RuntimeError); the other "
            "duties ran") in err
    assert "rprp sweep: Sweep duties failed: complainant-letters" in err
    assert SECRET not in out
    assert len(reminders_received(mail_sink, case_id)) == 1


async def test_a_wake_waits_while_prefect_has_not_saved_the_runs_form(prefect_api: str,
                                                                   monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Prefect pauses a run a moment before it stores the form's schema, and refuses a resume in
    between; the wake reads that from the run's state and tries again, instead of taking it for
    a person's form (or matching the refusal's wording)."""
    from prefect import flow

    @flow(name="rprp-wake-race")
    def waiting() -> None:
        """Never run: its flow run is only put in the state under test."""

    keyset = {"schema": "suspended-1-schema", "response": "suspended-1-response",
              "description": "suspended-1-description"}
    async with get_client() as client:
        run = await client.create_flow_run(waiting)
        await client.set_flow_run_state(run.id, Paused(pause_key="1", state_details={
            "run_input_keyset": keyset}), force=True)

    first_look = asyncio.Event()
    real = orchestration.suspension

    async def watched(flow_run_id: str) -> orchestration.Suspension | None:
        found = await real(flow_run_id)
        if found is not None and not found.form_saved:
            first_look.set()
        return found

    monkeypatch.setattr(orchestration, "suspension", watched)
    wake = asyncio.create_task(orchestration.wake_flow_run(str(run.id), attempts=200, delay=0.05))
    await asyncio.wait_for(first_look.wait(), 30)
    assert not wake.done(), "the wake gave up while the form's schema was still being saved"
    async with get_client() as client:  # Prefect saves the legacy one-field "Wake" form
        await client.create_flow_run_input(run.id, keyset["schema"], '{"title": "Wake"}')
    assert await asyncio.wait_for(wake, 30) is True
    async with get_client() as client:
        assert (await client.read_flow_run(run.id)).state_type is StateType.RUNNING
