"""Figure 5, intake: referrals per second through POST /api/referrals from concurrent clients
(httpx against the uvicorn-served portal on loopback; each referral stores a case and starts its
flow run on the real Prefect server), with latency, and where a request's time goes.

The work pool is paused while this runs, so the flow runs the referrals start stay Scheduled and
the 2-core machine measures the portal, the case DB and the Prefect API rather than the worker
running the new cases alongside; the runs are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

from bench.stats import summary

AUTH = ("psd", "psd-password")
WARM_UP = 5
COMPONENT_SAMPLES = 20


async def _set_pool_paused(paused: bool) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    from bench.stack import POOL

    async with get_client() as client:
        await client.update_work_pool(POOL, WorkPoolUpdate(is_paused=paused))


async def _delete_runs(run_ids: list[str]) -> int:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deleted = 0
    async with get_client() as client:
        for run_id in run_ids[:5000]:
            try:
                await client.delete_flow_run(UUID(run_id))
                deleted += 1
            except ObjectNotFound:
                pass
    return deleted


async def _burst(base_url: str, bodies: list[dict[str, Any]], clients: int,
                 created: list[str], asynchronous: bool = False,
                 case_ids: list[int] | None = None) -> dict[str, Any]:
    import httpx

    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Prefer": "respond-async"} if asynchronous else {}

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=base_url, auth=AUTH, timeout=60) as http:
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                response = await http.post("/api/referrals", json=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code in (200, 201, 202):
                    run_id = response.json().get("flow_run_id")
                    if run_id:
                        created.append(run_id)
                    if case_ids is not None:
                        case_ids.append(int(response.json()["case_id"]))

    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"requests": len(bodies), "wall_seconds": round(wall, 3),
            "per_second": round(len(bodies) / wall, 2) if wall else None,
            "latencies": latencies, "statuses": {str(k): v for k, v in statuses.items()}}


async def _runs_of_cases(case_ids: list[int], timeout: float = 300.0) -> list[str]:
    """The flow runs the portal started in the background for `case_ids`, once all have one."""
    from sqlmodel import col, select

    from infra.db import session_scope
    from models import Case

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            runs = session.exec(select(Case.flow_run_id).where(
                col(Case.id).in_(case_ids))).all()
        if all(runs) or time.monotonic() > deadline:
            return [r for r in runs if r]
        await asyncio.sleep(0.5)


async def _modes(base_url: str, requests: int, clients: int, repeats: int, log: Any,
                 created: list[str]) -> dict[str, Any]:
    """Both ways of referring, at 1 client and at `clients`: the run started before the answer
    (201, its id in the body) and after it (`Prefer: respond-async`, 202)."""
    from bench.cases import referral_data

    modes: dict[str, Any] = {}
    for asynchronous in (False, True):
        for n in sorted({1, clients}):
            label = f"{'async' if asynchronous else 'sync'}, {n} client{'s' * (n > 1)}"
            bursts, case_ids = [], []
            started_runs = 0
            for r in range(repeats):
                log(f"intake: {label}, repeat {r + 1}/{repeats}")
                bursts.append(await _burst(base_url, [referral_data() for _ in range(requests)],
                                           n, created, asynchronous, case_ids))
                if asynchronous:  # the next burst does not share the loop with these starts
                    started = await _runs_of_cases(case_ids[-requests:])
                    started_runs += len(started)
                    created += started
            latencies = [x for b in bursts for x in b["latencies"]]
            statuses: dict[str, int] = {}
            for b in bursts:
                for code, count in b["statuses"].items():
                    statuses[code] = statuses.get(code, 0) + count
            modes[label] = {"latency": summary(latencies),
                            "per_second": summary([b["per_second"] for b in bursts], unit="/s"),
                            "statuses": statuses,
                            # async: runs the portal started after answering, of the referrals
                            "runs_started": started_runs if asynchronous else None}
    return modes


async def _components(base_url: str, created: list[str]) -> dict[str, Any]:
    """The request's parts, timed one by one in this process with the portal's own code."""
    import httpx

    from bench.cases import sample_referral
    from portal.actions import store_referral
    from tasks.orchestration import start_case_flow

    store, start, health, validate = [], [], [], []
    for _ in range(COMPONENT_SAMPLES):
        t0 = time.perf_counter()
        referral = sample_referral()
        validate.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        case, _ = await asyncio.to_thread(store_referral, referral, actor="psd",
                                          idempotency_key=None)
        store.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        created.append(await start_case_flow(case.id or 0))
        start.append(time.perf_counter() - t0)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(COMPONENT_SAMPLES):
            t0 = time.perf_counter()
            await http.get("/healthz")
            health.append(time.perf_counter() - t0)
    return {
        "validate referral (pydantic)": summary(validate),
        "store the case (case DB transaction)": summary(store),
        "start_case_flow (Prefect API: deployment + create run)": summary(start),
        "HTTP round trip of GET /healthz (uvicorn + one DB SELECT)": summary(health),
    }


async def _profile_in_process(created: list[str], requests: int = 30) -> str:
    """pyinstrument over POST /api/referrals served in this process (ASGI, no network)."""
    import httpx
    from pyinstrument import Profiler

    from bench.cases import referral_data
    from portal.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal", auth=AUTH,
                                 timeout=60) as http:
        for _ in range(3):
            response = await http.post("/api/referrals", json=referral_data())
            created.append(response.json().get("flow_run_id") or "")
        profiler = Profiler(interval=0.001, async_mode="enabled")
        profiler.start()
        for _ in range(requests):
            response = await http.post("/api/referrals", json=referral_data())
            created.append(response.json().get("flow_run_id") or "")
        profiler.stop()
    from pyinstrument.renderers import ConsoleRenderer

    return ConsoleRenderer(unicode=False, color=False, show_all=False,
                           time="percent_of_total").render(profiler.last_session)[:8000]


async def run(stack: Any, requests: int, clients: int, repeats: int, log: Any,
              profile: bool = True) -> dict[str, Any]:
    from bench.cases import referral_data

    stack.start_portal()
    created: list[str] = []
    bursts: list[dict[str, Any]] = []
    await _set_pool_paused(True)
    try:
        await _burst(stack.portal_url, [referral_data() for _ in range(WARM_UP)], 1, created)
        for r in range(repeats):
            log(f"intake: repeat {r + 1}/{repeats}, {requests} referrals from {clients} clients")
            result = await _burst(stack.portal_url, [referral_data() for _ in range(requests)],
                                  clients, created)
            log(f"  {result['per_second']}/s")
            bursts.append(result)
        modes = await _modes(stack.portal_url, requests, clients, repeats, log, created)
        components = await _components(stack.portal_url, created)
        profile_text = await _profile_in_process(created) if profile else ""
    finally:
        # Delete before un-pausing: otherwise the worker starts hundreds of runs meanwhile.
        log(f"intake: deleting the {len(created)} flow runs it started ...")
        await _delete_runs([c for c in created if c])
        await _set_pool_paused(False)
    latencies = [x for b in bursts for x in b["latencies"]]
    statuses: dict[str, int] = {}
    for b in bursts:
        for code, n in b["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    bad = sum(n for code, n in statuses.items() if code not in ("200", "201"))
    result = {
        "requests": requests,
        "clients": clients,
        "repeats": repeats,
        "per_second": summary([b["per_second"] for b in bursts], unit="/s"),
        "latency": summary(latencies),
        "statuses": statuses,
        "failed_requests": bad,
        "modes": modes,
        "components": components,
        "worker": "work pool paused during the bursts (runs created, not executed)",
        "profile_in_process": profile_text,
        "target": "p95 < 250 ms (on PostgreSQL)",
    }
    fast = modes.get(f"async, {clients} client{'s' * (clients > 1)}", {})
    p95 = (fast.get("latency") or {}).get("p95")
    result["met"] = p95 is not None and p95 < 0.25 and bad == 0
    result["met_by"] = "async (Prefer: respond-async) p95 at the figure's clients"
    return result
