"""Figure 8, answer -> next wait: how long after a person answers (or the sweep wakes a case) the
case waits again with its next form, per kind of step, through the product's worker and, in the
same run and on the same deployments, through Prefect's stock process worker.

One case at a time, every input given the moment its step waits (bench.lifecycle.drive_case), so
the figure is the latency a manager sees, not a queue behind other cases. The watcher polls every
WATCH_SECONDS, which bounds how late a pause is seen.
"""

from __future__ import annotations

import asyncio
from itertools import pairwise
from typing import Any

from bench.stats import summary
from bench.watch import RunWatcher

WATCH_SECONDS = 0.05
# drive_case's steps, each "from the previous wait to this one", by what the previous wait ended.
KINDS: dict[str, tuple[str, ...]] = {
    "referral -> first wait (account)": ("awaiting-account",),
    "account -> next wait (the portal wakes the run)": ("fact-finding-decision",),
    "decision -> next wait (Resume in Prefect's UI)": (
        "discussion-scheduling", "discussion-held", "actions-monitoring"),
    "review due -> its form (the sweep starts the review)": ("review-waiting",),
    "review decided -> case closed": ("closed",),
}
TARGET_SECONDS = 1.0
TARGETED = ("account -> next wait (the portal wakes the run)",
            "decision -> next wait (Resume in Prefect's UI)",
            "review due -> its form (the sweep starts the review)")


def by_kind(lives: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Pool each case's step times into the kinds of step above."""
    out: dict[str, dict[str, Any]] = {}
    for kind, labels in KINDS.items():
        out[kind] = summary([life[label] for life in lives for label in labels if label in life])
    return out


PHASES = ("waiting -> Scheduled (the answer or wake reaches Prefect)",
          "Scheduled -> Pending (the worker picks the run up)",
          "Pending -> Running (process start, engine set-up)",
          "Running -> waiting again (replay and the step's work)")


async def phases(run_id: str) -> list[tuple[float, ...]]:
    """For each time the run was scheduled again after a wait: its four phases, in seconds,
    from Prefect's state history (the server's clock)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    async with get_client() as client:
        states = sorted(await client.read_flow_run_states(UUID(run_id)),
                        key=lambda state: state.timestamp)
    out: list[tuple[float, ...]] = []
    marks: dict[str, Any] = {}
    for state in states:
        kind = state.type.value
        if kind == "SCHEDULED" and "PAUSED" in marks:
            marks["SCHEDULED"] = state.timestamp
        elif kind in ("PENDING", "RUNNING") and "SCHEDULED" in marks:
            marks.setdefault(kind, state.timestamp)
        elif kind in ("PAUSED", "COMPLETED"):
            if {"PAUSED", "SCHEDULED", "PENDING", "RUNNING"} <= set(marks):
                order = ["PAUSED", "SCHEDULED", "PENDING", "RUNNING"]
                stamps = [marks[k] for k in order] + [state.timestamp]
                out.append(tuple((b - a).total_seconds() for a, b in pairwise(stamps)))
            marks = {"PAUSED": state.timestamp} if kind == "PAUSED" else {}
    return out


async def _while_alive(stack: Any, work: Any) -> Any:
    """Await `work`, giving up at once if a service of the stack (the worker) has died, rather
    than after the step timeout."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if done:
                return task.result()
            stack.check_alive()
    finally:
        task.cancel()


async def _lives(stack: Any, cases: int, log: Any, worker: str, warm_up: bool = True
                 ) -> tuple[list[dict[str, float]], list[tuple[float, ...]], list[str]]:
    from bench.lifecycle import drive_case

    lives: list[dict[str, float]] = []
    split: list[tuple[float, ...]] = []
    errors: list[str] = []
    async with RunWatcher(WATCH_SECONDS) as watcher:
        first = 0 if warm_up else 1
        for i in range(first, cases + 1):  # case 0 is a warm-up, not counted
            try:
                result = await _while_alive(stack, drive_case(watcher))
            except Exception as exc:  # noqa: BLE001 - reported, the others still count
                errors.append(f"{worker} case {i}: {type(exc).__name__}: {exc}")
                continue
            if i:
                lives.append(result["steps"])
                split += await phases(result["run_id"])
                log(f"  {worker} case {i}/{cases}: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in result["steps"].items()))
            stack.check_alive()
    return lives, split, errors


async def run(stack: Any, cases: int, log: Any, workers: tuple[str, ...] = ("rprp", "stock"),
              warm_up: bool = True) -> dict[str, Any]:
    per_worker: dict[str, dict[str, Any]] = {}
    per_phase: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    try:
        for worker in workers:
            log(f"next wait: {cases} cases one at a time through the {worker} worker ...")
            stack.use_worker(worker)
            lives, split, failed = await _lives(stack, cases, log, worker, warm_up)
            errors += failed
            per_worker[worker] = by_kind(lives)
            per_phase[worker] = {name: summary([row[i] for row in split])
                                 for i, name in enumerate(PHASES)}
    finally:
        stack.use_worker("rprp")  # the figures after this one run on the product's worker
    ratios: dict[str, float | None] = {}
    if "rprp" in per_worker and "stock" in per_worker:
        for kind in KINDS:
            ours, theirs = per_worker["rprp"][kind]["median"], per_worker["stock"][kind]["median"]
            ratios[kind] = round(theirs / ours, 2) if ours and theirs else None
    ours = per_worker.get("rprp", {})
    p95s = [ours[k]["p95"] for k in TARGETED if k in ours and ours[k]["p95"] is not None]
    return {
        "cases": cases,
        "warm_up": warm_up,
        "workers": list(workers),
        "setting": (f"one case at a time; PREFECT_WORKER_QUERY_SECONDS={stack.poll_seconds:g}; "
                    f"rprp = `python -m rprp.worker --limit {stack.worker_limit}` (fork server, "
                    f"event-driven polls); stock = `prefect worker start` (no limit: with one, "
                    f"Prefect 3.8's worker crashes on an instant resume); a pause is seen "
                    f"within {WATCH_SECONDS:g} s"),
        "by_worker": per_worker,
        "targeted": list(TARGETED),
        "phases_by_worker": per_phase,
        "stock_over_rprp_median": ratios,
        "errors": errors[:10],
        "target": f"p95 <= {TARGET_SECONDS:g} s (account, decision, sweep wake)",
        "met": len(p95s) == len(TARGETED) and max(p95s) <= TARGET_SECONDS
        and not any(e.startswith("rprp ") for e in errors),
        "worst_p95": max(p95s) if p95s else None,
    }
