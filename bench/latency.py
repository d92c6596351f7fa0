"""Figure 4, resume latency: from an officer's account posted to the portal page to the case's
flow run running again, one case at a time, with the phases from Prefect's state history."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from bench.stats import summary
from bench.watch import RunWatcher

TOKEN = re.compile(r"/account/([A-Za-z0-9_.\-]+)")
TIMEOUT = 300.0


def account_token(case_id: int) -> str:
    """The link in the officer's notice email, as the officer would click it."""
    from sqlmodel import select

    from infra.db import session_scope
    from models import Outbox

    with session_scope() as session:
        row = session.exec(select(Outbox).where(Outbox.case_id == case_id,
                                                Outbox.kind == "officer_notice")).first()
        if row is None:
            raise RuntimeError(f"case {case_id} has no notice email")
        match = TOKEN.search(row.body_text)
        if match is None:
            raise RuntimeError(f"no account link in the notice of case {case_id}")
        return match.group(1)


def one_time_code(case_id: int) -> str:
    """The code the officer would ask for on the page and read in their email (not timed)."""
    from portal import account_code

    return account_code.issue(case_id, 1)


async def _states_after(run_id: str, since: datetime) -> dict[str, datetime]:
    """First Scheduled (resumed), Pending (picked up) and Running state after `since`."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        states = await client.read_flow_run_states(UUID(run_id))
    found: dict[str, datetime] = {}
    for state in sorted(states, key=lambda s: s.timestamp):
        stamp = state.timestamp.astimezone(UTC)
        if stamp < since:
            continue
        found.setdefault(state.type.value, stamp)
    return found


async def run(stack: Any, samples: int, log: Any) -> dict[str, Any]:
    import httpx

    from bench.cases import open_case_in_db
    from tasks.orchestration import start_case_flow

    stack.start_portal()
    log(f"latency: preparing {samples} cases waiting for their accounts ...")
    case_ids = [await asyncio.to_thread(open_case_in_db) for _ in range(samples)]
    run_ids = [await start_case_flow(c) for c in case_ids]
    rows: list[dict[str, float]] = []
    errors: list[str] = []
    async with RunWatcher(0.1) as watcher:
        keys = await asyncio.gather(*(watcher.next_pause(r, None, max(TIMEOUT, samples * 10),
                                                          "the case to wait for its account")
                                      for r in run_ids))
        await asyncio.sleep(2)  # let the last flow processes exit
        async with httpx.AsyncClient(base_url=stack.portal_url, timeout=60) as http:
            for i, (case_id, run_id, key) in enumerate(zip(case_ids, run_ids, keys, strict=True)):
                token = await asyncio.to_thread(account_token, case_id)
                code = await asyncio.to_thread(one_time_code, case_id)
                sent = datetime.now(UTC)
                t0 = time.perf_counter()
                response = await http.post(f"/account/{token}", data={
                    "account": "I accept I was abrupt; I was rushing to another call.",
                    "code": code})
                post_seconds = time.perf_counter() - t0
                if response.status_code != 303:
                    errors.append(f"case {case_id}: account page answered {response.status_code}")
                    continue
                try:
                    await watcher.next_pause(run_id, key, TIMEOUT, "the next decision")
                except Exception as exc:  # noqa: BLE001
                    errors.append(f"case {case_id}: {exc}")
                    continue
                states = await _states_after(run_id, sent)
                if "RUNNING" not in states:
                    errors.append(f"case {case_id}: no Running state after the account")
                    continue
                running = (states["RUNNING"] - sent).total_seconds()
                scheduled = (states.get("SCHEDULED", sent) - sent).total_seconds()
                pending = (states.get("PENDING", states["RUNNING"]) - sent).total_seconds()
                rows.append({"latency": running, "post": post_seconds, "resumed": scheduled,
                             "picked_up": pending - scheduled, "process_start": running - pending})
                log(f"  sample {i + 1}/{samples}: {running:.2f} s")
                await asyncio.sleep(1.0)  # the previous run's process exits before the next
    latencies = [r["latency"] for r in rows]
    result = {
        "samples": samples,
        "measured": len(rows),
        "errors": errors[:5],
        "worker_poll_seconds": stack.poll_seconds,
        "setting": f"PREFECT_WORKER_QUERY_SECONDS={stack.poll_seconds:g} on the worker "
                   f"(rprp.worker --limit {stack.worker_limit})",
        "latency": summary(latencies),
        "phases": {
            "account POST answered (record + wake)": summary([r["post"] for r in rows]),
            "POST sent -> run Scheduled (resumed)": summary([r["resumed"] for r in rows]),
            "Scheduled -> Pending (worker poll)": summary([r["picked_up"] for r in rows]),
            "Pending -> Running (process start)": summary([r["process_start"] for r in rows]),
        },
        "target": "p95 <= 5 s",
    }
    p95 = result["latency"]["p95"]
    result["met"] = p95 is not None and p95 <= 5.0 and not errors
    return result
