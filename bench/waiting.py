"""Figure 2, waiting is free: M cases left waiting for their officers' accounts. How many flow
processes they hold (target 0), what the server and worker hold in memory before and after, and
how long it takes to list them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.machine import tree_rss_mb
from bench.stats import summary
from bench.watch import RunWatcher
from rprp.processes import flow_processes

LIST_REPEATS = 15


async def _sample_children(stack: Any, stop: asyncio.Event, peak: dict[str, float]) -> None:
    while not stop.is_set():
        peak["children"] = max(peak["children"], len(flow_processes(stack.worker_pid())))
        peak["worker_mb"] = max(peak["worker_mb"], tree_rss_mb(stack.worker_pid()))
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass


async def list_paused_runs() -> int:
    """What an operator's view does: every case run paused for input, page by page."""
    from prefect.client.schemas.objects import StateType

    from tasks.orchestration import case_runs

    return len(await case_runs([StateType.PAUSED]))


def list_waiting_cases() -> int:
    """The same from the case DB: cases waiting for an account, with their deadlines."""
    from sqlmodel import select

    from infra.db import session_scope
    from models import Case, Deadline
    from models.enums import CaseState, DeadlineKind

    with session_scope() as session:
        rows = session.exec(
            select(Case.id, Case.flow_run_id, Deadline.due_at)
            .join(Deadline, Deadline.case_id == Case.id)  # type: ignore[arg-type]
            .where(Case.state == CaseState.AWAITING_ACCOUNT,
                   Deadline.kind == DeadlineKind.ACCOUNT, Deadline.round == Case.notice_round)
        ).all()
    return len(rows)


async def run(stack: Any, cases: int, log: Any) -> dict[str, Any]:
    from bench.cases import open_case_in_db
    from tasks.orchestration import start_case_flow

    before = {"worker_mb": tree_rss_mb(stack.worker_pid()),
              "server_mb": tree_rss_mb(stack.server_pid()),
              "flow_processes": len(flow_processes(stack.worker_pid()))}
    log(f"waiting: starting {cases} cases (each runs until it waits for the account) ...")
    peak = {"children": 0.0, "worker_mb": 0.0}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_children(stack, stop, peak))
    t0 = time.monotonic()
    run_ids: list[str] = []
    gate = asyncio.Semaphore(8)

    async def one() -> str:
        async with gate:
            case_id = await asyncio.to_thread(open_case_in_db)
            return await start_case_flow(case_id)

    run_ids = list(await asyncio.gather(*(one() for _ in range(cases))))
    submitted = time.monotonic() - t0
    timeout = max(600.0, cases * 8.0)
    async with RunWatcher(1.0) as watcher:
        results = await asyncio.gather(
            *(watcher.next_pause(r, None, timeout, "the case to wait for its account")
              for r in run_ids), return_exceptions=True)
    all_waiting = time.monotonic() - t0
    failures = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    keys_ok = sum(1 for r in results if isinstance(r, str) and r.startswith("awaiting-account"))

    # Idle: what the waiting cases hold. Sample the worker's children for a few seconds.
    await asyncio.sleep(3)
    held = []
    for _ in range(10):
        held.append(len(flow_processes(stack.worker_pid())))
        await asyncio.sleep(0.5)
    stop.set()
    await sampler
    after = {"worker_mb": tree_rss_mb(stack.worker_pid()),
             "server_mb": tree_rss_mb(stack.server_pid()),
             "flow_processes": max(held)}

    list_prefect, list_db = [], []
    listed_prefect = listed_db = 0
    for _ in range(LIST_REPEATS):
        t = time.perf_counter()
        listed_prefect = await list_paused_runs()
        list_prefect.append(time.perf_counter() - t)
        t = time.perf_counter()
        listed_db = await asyncio.to_thread(list_waiting_cases)
        list_db.append(time.perf_counter() - t)
    return {
        "cases": cases,
        "waiting": keys_ok,
        "failures": len(failures),
        "errors": failures[:5],
        "seconds_to_submit": round(submitted, 2),
        "seconds_until_all_waiting": round(all_waiting, 2),
        "flow_processes_while_waiting": after["flow_processes"],
        "peak_flow_processes_while_starting": int(peak["children"]),
        "worker_limit": stack.worker_limit,
        "memory_mb": {"before": before, "after": after,
                      "peak_worker_tree_while_starting": peak["worker_mb"]},
        "list_paused_runs_prefect": summary(list_prefect),
        "paused_runs_listed": listed_prefect,
        "list_waiting_cases_db": summary(list_db),
        "waiting_cases_listed": listed_db,
        "target": "0 flow processes held while waiting",
        "met": after["flow_processes"] == 0 and not failures and keys_ok == cases,
    }
