"""The few calls the case record makes to Prefect: start a case's run, wake it, stop it.

Only ids ever cross: never the account, the discussion or monitoring data.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus
from prefect.deployments import arun_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Scheduled
from sqlmodel import select

from infra.db import session_scope
from models import ActionReview, Case
from tasks.history_import import is_imported

CASE_DEPLOYMENT = "rprp-case/rprp-case"
ACTION_REVIEW_DEPLOYMENT = "rprp-action-review/rprp-action-review"

log = logging.getLogger("rprp.orchestration")


class ImportedRecordError(Exception):
    """The case was imported from history: a record, never a live case with a run."""


async def start_case_flow(case_id: int) -> str:
    """One flow run per case: the idempotency key makes a second start return the first run."""
    with session_scope() as session:
        if is_imported(session, case_id):
            raise ImportedRecordError(f"RPRP-{case_id:06d} is an imported record: no flow run")
    run: FlowRun = await arun_deployment(
        CASE_DEPLOYMENT,
        parameters={"case_id": case_id},
        timeout=0,
        idempotency_key=f"rprp-case-{case_id}",
        flow_run_name=f"RPRP-{case_id:06d}",
        as_subflow=False,
        tags=["rprp"],
    )
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is not None and case.flow_run_id != str(run.id):
            case.flow_run_id = str(run.id)
            session.add(case)
    return str(run.id)


async def start_action_review_flow(case_id: int, review_number: int) -> str:
    """Open action-plan review `review_number`; returns the id of the flow run that asks it.

    The review is a step of the case's own run (`action-review` in its run graph): while that
    run is alive, the review is marked as the run's and the run is woken to ask it (if it cannot
    be woken now, the case is flagged and the sweep wakes it next time). A case whose run has
    ended gets a review run of its own (`rprp-action-review`), as every review did before.
    """
    with session_scope() as session:
        case = session.get(Case, case_id)
        case_run = case.flow_run_id if case is not None else None
    if case_run and await _is_alive(case_run):
        with session_scope() as session:
            review = session.exec(select(ActionReview).where(
                ActionReview.case_id == case_id, ActionReview.number == review_number)).one()
            review.flow_run_id = case_run
            session.add(review)
        await wake_case(case_id)
        return case_run
    run: FlowRun = await arun_deployment(
        ACTION_REVIEW_DEPLOYMENT,
        parameters={"case_id": case_id, "review_number": review_number},
        timeout=0,
        idempotency_key=f"rprp-action-review-{case_id}-{review_number}",
        flow_run_name=f"RPRP-{case_id:06d}-review-{review_number}",
        as_subflow=False,
        tags=["rprp", "action-review"],
    )
    return str(run.id)


async def _is_alive(flow_run_id: str) -> bool:
    async with get_client() as client:
        try:
            run = await client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
    return run.state is not None and not run.state.is_final()


@dataclass(frozen=True)
class Suspension:
    """How a paused run waits, read from Prefect: `form` is the title of the form it waits for
    (None: no form, so waking it needs no input); `form_saved` is False while Prefect has paused
    the run but not yet stored that form's schema, when a resume would be refused."""

    form: str | None
    form_saved: bool


async def suspension(flow_run_id: str) -> Suspension | None:
    """The run's suspension; None if it is not paused (yet, or any more) or does not exist."""
    async with get_client() as client:
        try:
            run = await client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return None
        if run.state is None or not run.state.is_paused():
            return None
        keyset = run.state.state_details.run_input_keyset
        if not keyset:
            return Suspension(form=None, form_saved=True)
        try:
            schema = await client.read_flow_run_input(UUID(flow_run_id), keyset["schema"])
        except httpx.HTTPStatusError as exc:  # this call reports a missing input as a plain 404
            if exc.response.status_code != httpx.codes.NOT_FOUND:
                raise
            return Suspension(form="", form_saved=False)
    return Suspension(form=str(json.loads(schema).get("title") or ""), form_saved=True)


class Wake(Enum):
    """What came of waking a run."""

    WOKEN = "woken"
    NEVER = "never by us"  # it waits for a person's form, or its pause timed out
    NOT_YET = "not yet"  # not (yet) suspended without a form: try again later


async def wake_flow_run(flow_run_id: str, attempts: int = 5, delay: float = 1.0) -> bool:
    """Resume a run suspended without a form (a wait for the officer or for a review), so it
    reads the case again; False if it is not (yet) so suspended."""
    return await wake(flow_run_id, attempts, delay) is Wake.WOKEN


async def wake(flow_run_id: str, attempts: int = 5, delay: float = 1.0) -> Wake:
    """Resume a run suspended without a form, and say what came of it.

    A run waiting for a person's form is never woken: that answer is theirs to give. The run may
    still be between reading the case and suspending, or paused with its form's schema not yet
    saved (Prefect would refuse the resume), so it is read again a few times; each time its
    state, not an error's wording, says why it cannot be woken yet.
    """
    for attempt in range(attempts):
        outcome = await _wake_once(flow_run_id)
        if outcome is not Wake.NOT_YET:
            return outcome
        if attempt + 1 < attempts:
            await asyncio.sleep(delay)
    return Wake.NOT_YET


async def _wake_once(flow_run_id: str) -> Wake:
    waiting = await suspension(flow_run_id)
    if waiting is None or not waiting.form_saved:
        return Wake.NOT_YET
    run_input: dict[str, str] | None = None
    if waiting.form is not None:
        if waiting.form != LEGACY_WAKE_TITLE:
            log.info("flow run %s waits for a person's form: not woken", flow_run_id)
            return Wake.NEVER
        run_input = LEGACY_WAKE_INPUT
    async with get_client() as client:
        result = await client.resume_flow_run(UUID(flow_run_id), run_input=run_input)
    if result.status is SetStateStatus.ACCEPT:
        return Wake.WOKEN
    if result.state is not None and result.state.type is StateType.FAILED:
        return Wake.NEVER  # its pause timed out: Prefect failed it, nothing to wake
    log.info("flow run %s not woken yet: %s", flow_run_id, result.status.value)
    return Wake.NOT_YET  # it moved on since we read it


# Runs suspended before internal waits had no form still wait for this one-field "Wake" form.
LEGACY_WAKE_TITLE = "Wake"
LEGACY_WAKE_INPUT = {"reason": "case_changed"}


async def wake_case(case_id: int, attempts: int = 5) -> bool:
    """Wake the case's run; if it cannot be woken now, flag the case for the sweep to retry.

    A run that has moved on to wait for a person's form has read the case since it was flagged
    (forms come after the waits that are woken), so its flag is cleared, not retried for ever.
    """
    with session_scope() as session:
        case = session.get(Case, case_id)
        flow_run_id = case.flow_run_id if case else None
        if is_imported(session, case_id):
            # An imported record has no run to wake, and the sweep must not keep trying.
            if case is not None and case.wake_requested:
                case.wake_requested = False
                session.add(case)
            return False
    outcome = await wake(flow_run_id, attempts) if flow_run_id else Wake.NOT_YET
    retry = outcome is Wake.NOT_YET
    with session_scope() as session:
        case = session.get(Case, case_id)
        if case is not None and case.wake_requested != retry:
            case.wake_requested = retry
            session.add(case)
    return outcome is Wake.WOKEN


async def stop_flow_run(flow_run_id: str | None, message: str) -> None:
    """End a run that is waiting for a person when the case closed outside it (officer left)."""
    if not flow_run_id:
        return
    async with get_client() as client:
        try:
            run = await client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return
        if run.state and not run.state.is_final():
            await client.set_flow_run_state(UUID(flow_run_id), Cancelled(message=message),
                                            force=True)


async def resume_retired_wait(case_id: int) -> bool:
    """Resume the run of a case waiting on a step the code no longer has, whatever form it
    waits for: the run replays from the top, and the flow moves the case on by the step's
    migration rule (tasks/steps.py `RETIRED`). Only a paused run is rescheduled; the person's
    old form, which no code would now apply, is left unanswered."""
    with session_scope() as session:
        case = session.get(Case, case_id)
        flow_run_id = case.flow_run_id if case is not None else None
    if not flow_run_id:
        return False
    async with get_client() as client:
        try:
            run = await client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
        if run.state is None or not run.state.is_paused():
            return False
        await client.set_flow_run_state(
            run.id, Scheduled(message="Rescheduled: the step it waited on was retired"),
            force=True)
    return True


STALE_STATES = [StateType.RUNNING, StateType.PENDING, StateType.CRASHED]


PAGE = 200  # the most runs Prefect returns per request


async def case_runs(states: list[StateType]) -> list[FlowRun]:
    """Every run of the product's flows (tagged `rprp`) in one of `states`. Prefect's list
    endpoint returns at most 200 runs at a time, so it is read page by page."""
    found: list[FlowRun] = []
    async with get_client() as client:
        while True:
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)),
                    tags=FlowRunFilterTags(all_=["rprp"]),
                ),
                limit=PAGE, offset=len(found),
            )
            found += runs
            if len(runs) < PAGE:
                return found


async def recover_stalled_runs(stale_after: timedelta, now: datetime | None = None) -> list[str]:
    """Reschedule case runs whose process died (worker killed, machine lost) mid-step.

    A step takes seconds; a run still Running or Pending long after it entered that state has
    no process behind it. Rescheduled, Prefect replays it from the top and every step checks the
    case record, so nothing is repeated and nothing is lost. They are all read before any is
    rescheduled: a rescheduled run leaves the filter, and paging by offset would then skip as
    many others.
    """
    cutoff = (now or datetime.now(UTC)).astimezone(UTC) - stale_after
    recovered: list[str] = []
    stalled = [run for run in await case_runs(STALE_STATES)
               if run.state is not None and run.state.timestamp.astimezone(UTC) < cutoff]
    async with get_client() as client:
        for run in stalled:
            await client.set_flow_run_state(
                run.id, Scheduled(message="Rescheduled: its process stopped mid-step"),
                force=True)
            recovered.append(str(run.id))
    return recovered
