"""Figure 1, lifecycle overhead: N cases through their whole life with instant inputs, against
the bare flow of the same shape on the same server, batches interleaved (ABBA) in one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from bench.stats import summary
from bench.watch import RunWatcher

STEP_TIMEOUT = 900.0  # one wait, with N cases queued behind a worker limit of 4
CASE_STEPS = ["awaiting-account", "fact-finding-decision", "discussion-scheduling",
              "discussion-held", "actions-monitoring"]


async def resume_bare(run_id: UUID, run_input: dict[str, Any] | None = None,
                 attempts: int = 20) -> None:
    """Resume a bare (not RPRP) run, or wake one, straight on Prefect, once its suspension is
    ready: paused, with its form's schema saved (`tasks.orchestration.suspension`). A run read a
    moment before it paused, or before Prefect saved the schema, is read again."""
    from prefect.flow_runs import aresume_flow_run

    from tasks.orchestration import suspension

    for attempt in range(attempts):
        waiting = await suspension(str(run_id))
        if waiting is not None and waiting.form_saved:
            await aresume_flow_run(run_id, run_input=run_input)
            return
        if attempt + 1 == attempts:
            raise RuntimeError(f"flow run {run_id} never became ready to resume")
        await asyncio.sleep(0.25)


async def resume(run_id: UUID, run_input: dict[str, Any], attempts: int = 20) -> None:
    """Decide as a person would, through the portal's gateway signed in as the case's reviewer,
    pressing again if the run paused a moment before Prefect saved its input schema."""
    import httpx

    from bench.cases import REVIEWER
    from portal.auth import User
    from portal.gateway import submit_decision

    reviewer = User("Sgt Sam Reviewer", REVIEWER, frozenset({"reviewer"}))
    async with httpx.AsyncClient(timeout=30) as client:
        for attempt in range(attempts):
            result = await submit_decision(reviewer, str(run_id), run_input, client)
            if result is not None and result.get("status") == "ACCEPT":
                return
            if attempt + 1 == attempts:
                raise RuntimeError(f"decision not taken: {result}")
            await asyncio.sleep(0.25)


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: list[tuple[str, float]] = []

    def mark(self, label: str) -> None:
        self.marks.append((label, time.monotonic() - self.t0))

    def steps(self) -> dict[str, float]:
        out, last = {}, 0.0
        for label, at in self.marks:
            out[label] = at - last
            last = at
        return out


async def drive_case(watcher: RunWatcher) -> dict[str, Any]:
    """Referral to closure for one case, each input given the moment its step is waiting."""

    from bench.cases import (
        discussion_answer,
        fact_finding_answer,
        open_case_in_db,
        remember_review,
        report_answer,
    )
    from infra.db import session_scope
    from models import Case
    from models.enums import CaseState
    from tasks.casework import record_account
    from tasks.orchestration import start_action_review_flow, start_case_flow, wake_case

    clock = Clock()
    case_id = await asyncio.to_thread(open_case_in_db)
    run_id = await start_case_flow(case_id)
    clock.mark("start")

    async def step(after: str | None, expected: str) -> str:
        key = await watcher.next_pause(run_id, after, STEP_TIMEOUT, f"case {case_id}: {expected}")
        if not key.startswith(expected):
            raise RuntimeError(f"case {case_id} paused on {key}, expected {expected}")
        clock.mark(expected)
        return key

    key = await step(None, "awaiting-account")
    _, wake = await asyncio.to_thread(record_account, case_id, 1,
                                      "I accept I was abrupt; I was rushing to another call.")
    if not (wake and await wake_case(case_id)):
        raise RuntimeError(f"case {case_id}: account not taken or run not woken")
    key = await step(key, "fact-finding-decision")
    await resume(UUID(run_id), run_input=fact_finding_answer())
    key = await step(key, "discussion-scheduling")
    await resume(UUID(run_id), run_input=discussion_answer())
    key = await step(key, "discussion-held")
    await resume(UUID(run_id), run_input=report_answer())
    key = await step(key, "actions-monitoring")

    # What the sweep does when the review falls due (tasks.deadline_sweep.start_due_reviews).
    review_run = await start_action_review_flow(case_id, 1)

    action_id = await asyncio.to_thread(remember_review, case_id, review_run)
    # The review is asked in the case's own run (woken for it), so wait for its next pause.
    after = key if review_run == run_id else None
    await watcher.next_pause(review_run, after, STEP_TIMEOUT, f"case {case_id}: review paused")
    clock.mark("review-waiting")
    await resume(UUID(review_run), run_input={
        f"action_{action_id}_note": "Module completed.",
        f"action_{action_id}_outcome": "Completed: close this action"})
    final = await watcher.final(run_id, STEP_TIMEOUT, f"case {case_id} to finish")
    await watcher.final(review_run, STEP_TIMEOUT, f"review of case {case_id} to finish")
    clock.mark("closed")
    watcher.forget([run_id, review_run])

    def state() -> CaseState:
        with session_scope() as session:
            case = session.get(Case, case_id)
            assert case is not None
            return case.state

    closed = await asyncio.to_thread(state)
    if final != "Completed" or closed is not CaseState.CLOSED_COMPLETE:
        raise RuntimeError(f"case {case_id} ended {final} in {closed}")
    return {"seconds": clock.marks[-1][1], "steps": clock.steps(), "run_id": run_id}


async def drive_bare(watcher: RunWatcher, record_dir: Path) -> dict[str, Any]:
    """The same conversation with the bare flow: start, five suspends, a review run, closure."""
    from prefect.deployments import arun_deployment

    from bench.bare import WAITS, write_step

    clock = Clock()
    run = await arun_deployment("bench-bare-case/bench-bare-case",
                                parameters={"record_dir": str(record_dir)}, timeout=0,
                                as_subflow=False, tags=["bench"])
    run_id = str(run.id)
    record = str(record_dir / f"{run_id}.step")
    clock.mark("start")
    key: str | None = None
    for step, (kind, label) in enumerate(zip(WAITS, CASE_STEPS, strict=True)):
        key = await watcher.next_pause(run_id, key, STEP_TIMEOUT, f"bare {run_id}: {label}")
        if key != f"bare-{step}":
            raise RuntimeError(f"bare run {run_id} paused on {key}, expected bare-{step}")
        clock.mark(label)
        if step == len(WAITS) - 1:
            break
        if kind == "wake":  # the portal stores the account, then wakes the run
            await asyncio.to_thread(write_step, record, step + 1)
            await resume_bare(run.id)
        else:
            await resume_bare(run.id, run_input={"choice": "ok",
                                                      "decided_by": "sgt.reviewer@force.example"})
    review = await arun_deployment("bench-bare-review/bench-bare-review",
                                   parameters={"record_dir": str(record_dir),
                                               "case_run_id": run_id},
                                   timeout=0, as_subflow=False, tags=["bench"])
    await watcher.next_pause(str(review.id), None, STEP_TIMEOUT, f"bare review of {run_id}")
    clock.mark("review-waiting")
    await resume_bare(review.id, run_input={"choice": "closed",
                                                 "decided_by": "psd@force.example"})
    final = await watcher.final(run_id, STEP_TIMEOUT, f"bare {run_id} to finish")
    await watcher.final(str(review.id), STEP_TIMEOUT, f"bare review of {run_id} to finish")
    clock.mark("closed")
    watcher.forget([run_id, str(review.id)])
    if final != "Completed":
        raise RuntimeError(f"bare run {run_id} ended {final}")
    return {"seconds": clock.marks[-1][1], "steps": clock.steps()}


async def batch(kind: str, n: int, watcher: RunWatcher, record_dir: Path) -> dict[str, Any]:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    if kind == "case":
        jobs = [drive_case(watcher) for _ in range(n)]
    else:
        jobs = [drive_bare(watcher, record_dir) for _ in range(n)]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    wall = time.monotonic() - t0
    ok = [r for r in results if isinstance(r, dict)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"kind": kind, "started": started, "wall_seconds": round(wall, 2), "cases": n,
            "completed": len(ok), "errors": errors[:5], "error_count": len(errors),
            "per_case_seconds": [round(r["seconds"], 2) for r in ok],
            "steps": [r["steps"] for r in ok]}


def _step_medians(batches: list[dict[str, Any]]) -> dict[str, float]:
    pooled: dict[str, list[float]] = {}
    for b in batches:
        for steps in b["steps"]:
            for label, seconds in steps.items():
                pooled.setdefault(label, []).append(seconds)
    return {label: round(statistics.median(v), 2) for label, v in pooled.items()}


async def run(stack: Any, cases: int, repeats: int, log: Any, warm_up: bool = True
              ) -> dict[str, Any]:
    record_dir = stack.bare_dir
    batches: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    async with RunWatcher(0.25) as watcher:
        # Warm-up: one of each, not counted (first imports, first connections, DB caches).
        if warm_up:
            log("lifecycle: warm-up (1 case + 1 bare, not counted)")
            for kind in ("case", "bare"):
                warm = await batch(kind, 1, watcher, record_dir)
                if warm["error_count"]:
                    raise RuntimeError(f"lifecycle warm-up failed: {warm['errors']}")
        for r in range(repeats):
            order = ("case", "bare") if r % 2 == 0 else ("bare", "case")
            pair: dict[str, Any] = {}
            for kind in order:
                log(f"lifecycle: repeat {r + 1}/{repeats}, {cases} {kind} lifecycles ...")
                result = await batch(kind, cases, watcher, record_dir)
                stack.check_alive()
                log(f"  {kind}: {result['wall_seconds']:.1f} s wall, "
                    f"{result['completed']}/{cases} completed")
                batches.append(result)
                pair[kind] = result["wall_seconds"]
            pair["ratio"] = round(pair["case"] / pair["bare"], 3) if pair["bare"] else None
            pairs.append(pair)
    case_b = [b for b in batches if b["kind"] == "case"]
    bare_b = [b for b in batches if b["kind"] == "bare"]
    failures = sum(b["error_count"] for b in batches)
    ratios = [p["ratio"] for p in pairs if p["ratio"]]
    return {
        "cases": cases,
        "repeats": repeats,
        "order": "ABBA: case/bare batches alternate which goes first",
        "case_wall": summary([b["wall_seconds"] for b in case_b]),
        "bare_wall": summary([b["wall_seconds"] for b in bare_b]),
        "ratio": summary(ratios, unit="x"),
        "case_per_case": summary([s for b in case_b for s in b["per_case_seconds"]]),
        "bare_per_case": summary([s for b in bare_b for s in b["per_case_seconds"]]),
        "case_step_medians": _step_medians(case_b),
        "bare_step_medians": _step_medians(bare_b),
        "pairs": pairs,
        "failures": failures,
        "errors": [e for b in batches for e in b["errors"]][:10],
        "batches": [{k: v for k, v in b.items() if k != "steps"} for b in batches],
        "target": "ratio <= 1.3",
        "met": bool(ratios) and statistics.median(ratios) <= 1.3 and failures == 0,
    }
