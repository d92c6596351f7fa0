"""Bare Prefect flows: the case lifecycle's shape with none of its work.

`bare_case` has the same structure as flows.case_lifecycle.rprp_case: each pass runs an "advance"
task and a "send" task, then suspends with a stable key; on a decision step it records the answer
in a third task. It replays from the top on every resume exactly as the case flow does (the
answered suspend returns its stored input at once), so it costs the same flow runs, process
starts, task runs, suspends and resumes, and nothing else. Its "case record" is a one-line file
(microseconds), standing in for the case DB so replay finds its place.

`bare_review` stands in for flows.action_review.rprp_action_review (no tasks, one suspend, then it
closes the "case" and wakes the case run); `wake_target` is a run suspended without a form, as the case
run waits for an account, used as a real target for the sweep's wake step.

This module imports Prefect and the standard library only, so a flow process running it pays
Prefect's own start-up and no more.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.flow_runs import aresume_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run

STEP = {"cache_policy": NO_CACHE, "persist_result": False}
# The case flow's five waits on the happy path: account (woken by the portal), fact-finding
# decision, discussion outcome, report (answered in the Resume form), action plan (woken at closure).
WAITS = ["wake", "decision", "decision", "decision", "wake"]


class BareInput(RunInput):
    """Accepts what the bench sends for a decision."""

    choice: str = ""
    decided_by: str = ""


def read_step(record: str) -> int:
    try:
        return int(Path(record).read_text() or 0)
    except FileNotFoundError:
        return 0


def write_step(record: str, step: int) -> None:
    path = Path(record)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(str(step))
    tmp.replace(path)


@task(name="bare-advance", **STEP)
def bare_advance(record: str) -> int:
    return read_step(record)


@task(name="bare-send", **STEP)
async def bare_send() -> int:
    return 0


@task(name="bare-record", **STEP)
def bare_record(record: str, step: int) -> int:
    if read_step(record) == step:
        write_step(record, step + 1)
    return step + 1


@flow(name="bench-bare-case", log_prints=False, persist_result=False)
async def bare_case(record_dir: str) -> str:
    record = str(Path(record_dir) / f"{flow_run.get_id()}.step")
    while True:
        step = bare_advance(record)
        await bare_send()
        if step >= len(WAITS):
            return "done"
        if WAITS[step] == "wake":  # an internal wait: no form, woken without input
            await suspend_flow_run(key=f"bare-{step}")
        else:
            await suspend_flow_run(wait_for_input=BareInput, key=f"bare-{step}")
            bare_record(record, step)


@flow(name="bench-bare-review", log_prints=False, persist_result=False)
async def bare_review(record_dir: str, case_run_id: str) -> str:
    await suspend_flow_run(wait_for_input=BareInput, key="bare-review")
    record = str(Path(record_dir) / f"{case_run_id}.step")
    if read_step(record) == len(WAITS) - 1:
        write_step(record, len(WAITS))  # "every action closed": the case is closed
    await aresume_flow_run(UUID(case_run_id))
    return "case closed"


@flow(name="bench-wake-target", log_prints=False, persist_result=False)
async def wake_target() -> str:
    await suspend_flow_run(key="wake")
    return "woken"
