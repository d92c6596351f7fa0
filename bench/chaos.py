"""`rprp chaos`: cases through their whole lives on the loopback cluster (rprp.cluster) while
parts of it fail, then an account of what survived.

Three phases on one cluster:

1. throughput with one worker: `throughput_cases` cases, no faults;
2. throughput with two workers: as many again;
3. chaos: `cases` cases (default 200) with two workers while, one after another, a worker is
   SIGKILLed mid-step and another started, one API replica is SIGKILLed and brought back, the
   SMTP server is stopped for a while, two sweeps run at once and the same sweep runs twice,
   Redis is restarted, every case-DB connection is ended (the pools must reconnect), every
   connection of both databases is ended, and PostgreSQL itself is restarted (fast shutdown,
   down for a while, started again). The cluster runs a PostgreSQL server of its own for this
   (initdb in a temporary directory); with `--postgres` given, or without PostgreSQL's binaries,
   it uses that shared server and leaves the restart out.

The driver gives each input the moment its step waits, as a person would (the account through
the case record, decisions through the gateway's code), and tries again when a fault gets in the
way: never an answer twice, since it checks first that the run still waits on that step. The
deadline sweep runs every `sweep_seconds`, as the force's schedule does, compressed; it is what
reschedules runs whose process was killed (after RPRP_STALLED_RUN_MINUTES, 1 here unless
`env` says otherwise) and what delivers mail the SMTP outage held back (first tried again after
RPRP_SMTP_RETRY_SECONDS, 30 unless `env` says otherwise).

At the end, from the case DB, the SMTP sink's files and Prefect: every case's state, steps lost,
emails delivered twice or never, duplicate decisions and audit events, flow runs left Crashed or
Running/Pending with no process, each fault's recovery time and the cases per minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

from bench.watch import RunWatcher
from rprp.cluster import Cluster, ClusterOptions, end_connections, postgres_binaries

STEP_TIMEOUT = 900.0
ACTION_TIMEOUT = 300.0  # one input, retried through a fault
EXPECTED_PAUSES = ("awaiting-account", "fact-finding-decision", "discussion-scheduling",
                   "discussion-held", "actions-monitoring", "review")
CHAOS_ENV = {
    "RPRP_SECRET_KEY": "chaos-secret-key-not-for-production",
    "RPRP_PSD_EMAIL": "psd@force.example",
    "RPRP_PSD_DECISION_MAKERS": "psd@force.example",
    "RPRP_REPORT_QUALITY_CHECK": "never",
    "RPRP_STALLED_RUN_MINUTES": "1",
    "RPRP_SMTP_RETRY_SECONDS": "30",
}


@dataclass
class Fault:
    name: str
    detail: str = ""
    injected_at: float = 0.0
    cleared_at: float = 0.0
    recovered_at: float = 0.0
    affected: int = 0  # runs in a killed worker's hands; emails held back by the outage
    errors: list[str] = field(default_factory=list)

    @property
    def recovery_seconds(self) -> float:
        return round(max(0.0, self.recovered_at - self.cleared_at), 2)

    def report(self, t0: float) -> dict[str, Any]:
        return {"fault": self.name, "detail": self.detail,
                "injected_at_s": round(self.injected_at - t0, 1),
                "cleared_at_s": round(self.cleared_at - t0, 1),
                "recovery_seconds": self.recovery_seconds, "affected": self.affected,
                "errors": self.errors[:5]}


@dataclass
class CaseResult:
    case_id: int
    run_id: str = ""
    reached: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


class Progress:
    """When the last step anywhere completed: the sign that the cluster moves again."""

    def __init__(self) -> None:
        self.steps: list[float] = []

    def mark(self) -> None:
        self.steps.append(time.monotonic())

    def since(self, moment: float) -> float | None:
        return next((at for at in self.steps if at > moment), None)


async def _retrying(what: str, action: Callable[[], Awaitable[Any]],
                    done: Callable[[], bool] | None = None,
                    timeout: float = ACTION_TIMEOUT) -> Any:
    """`action` until it succeeds (or `done` says it no longer needs doing)."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        if done is not None and done():
            return None
        try:
            return await action()
        except Exception as exc:  # noqa: BLE001 - a fault in the way: try again
            tries += 1
            if tries in (1, 10, 100):
                print(f"chaos: {what}: {type(exc).__name__}: {exc} (try {tries})"[:400],
                      file=sys.stderr, flush=True)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: gave up after {timeout:.0f} s: {exc}") from exc
            await asyncio.sleep(1.0)


async def drive_case(watcher: RunWatcher, progress: Progress) -> CaseResult:
    """Referral to closure for one case, as bench.lifecycle's driver, through faults."""
    from bench.cases import (
        REVIEWER,
        discussion_answer,
        fact_finding_answer,
        open_case_in_db,
        remember_review,
        report_answer,
    )
    from infra.db import session_scope
    from models import Case
    from models.enums import CaseState
    from portal.actions import wake_after_account
    from portal.auth import User
    from portal.gateway import submit_decision
    from tasks.casework import record_account
    from tasks.orchestration import start_action_review_flow, start_case_flow

    t0 = time.monotonic()
    case_id = await _retrying("store a referral", lambda: asyncio.to_thread(open_case_in_db))
    result = CaseResult(case_id)
    reviewer = User("Sgt Sam Reviewer", REVIEWER, frozenset({"reviewer"}))

    def waiting_on(run_id: str, key: str) -> bool:
        seen = watcher.runs.get(run_id)
        return seen is not None and seen.paused and seen.pause_key == key

    async def step(run_id: str, after: str | None, expected: str, label: str = "") -> str:
        key = await watcher.next_pause(run_id, after, STEP_TIMEOUT,
                                       f"case {case_id}: {label or expected}")
        if not key.startswith(expected):
            raise RuntimeError(f"case {case_id} paused on {key}, expected {expected}")
        result.reached.append(label or expected)
        progress.mark()
        return key

    async def decide(run_id: str, key: str, answer: dict[str, Any]) -> None:
        import httpx

        async def once() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                outcome = await submit_decision(reviewer, run_id, answer, client)
            if outcome is None or outcome.get("status") != "ACCEPT":
                raise RuntimeError(f"decision not taken: {outcome}")

        # Never twice: once the run has moved off this step, the answer was taken.
        await _retrying(f"case {case_id}: decide {key}", once,
                        done=lambda: not waiting_on(run_id, key))

    try:
        run_id = await _retrying(f"case {case_id}: start its run",
                                 lambda: start_case_flow(case_id))
        result.run_id = run_id
        key = await step(run_id, None, "awaiting-account")

        stored = False

        async def account() -> None:
            # As the portal's account page: store it once (a second try would be refused,
            # the case having moved on; storing it flags the case for the sweep's wake), then
            # wake the run.
            nonlocal stored
            if not stored:
                _, wake = await asyncio.to_thread(
                    record_account, case_id, 1, "I accept I was abrupt; I was rushing to a call.")
                if not wake:
                    raise RuntimeError("account taken but the run is not to be woken")
                stored = True
            await wake_after_account(case_id)

        await _retrying(f"case {case_id}: account", account,
                        done=lambda: not waiting_on(run_id, key) and bool(watcher.runs.get(run_id)))
        key = await step(run_id, key, "fact-finding-decision")
        await decide(run_id, key, fact_finding_answer())
        key = await step(run_id, key, "discussion-scheduling")
        await decide(run_id, key, discussion_answer())
        key = await step(run_id, key, "discussion-held")
        await decide(run_id, key, report_answer())
        key = await step(run_id, key, "actions-monitoring")
        review_run = await _retrying(f"case {case_id}: open the review",
                                     lambda: start_action_review_flow(case_id, 1))

        action_id = await _retrying("remember the review", lambda: asyncio.to_thread(
            remember_review, case_id, review_run))
        after = key if review_run == run_id else None
        key = await step(review_run, after, "", label="review")
        await decide(review_run, key, {
            f"action_{action_id}_note": "Module completed.",
            f"action_{action_id}_outcome": "Completed: close this action"})
        await watcher.final(run_id, STEP_TIMEOUT, f"case {case_id} to finish")
        progress.mark()

        def state() -> CaseState:
            with session_scope() as session:
                case = session.get(Case, case_id)
                assert case is not None
                return case.state

        closed = await _retrying("read the case", lambda: asyncio.to_thread(state))
        if closed is not CaseState.CLOSED_COMPLETE:
            result.error = f"ended in {closed}"
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the others go on
        result.error = f"{type(exc).__name__}: {exc}"[:300]
    result.seconds = round(time.monotonic() - t0, 1)
    return result


async def batch(cases: int, progress: Progress,
                spread_seconds: float = 0.0) -> tuple[list[CaseResult], float]:
    """`cases` cases at once, or referred evenly over `spread_seconds` (so that the faults find
    cases at every kind of step, however few there are)."""
    start = time.monotonic()

    async def referred_later(index: int, watcher: RunWatcher) -> CaseResult:
        await asyncio.sleep(index * spread_seconds / cases)
        return await drive_case(watcher, progress)

    async with RunWatcher(interval=0.5) as watcher:
        results = await asyncio.gather(*(referred_later(i, watcher) for i in range(cases)))
    return list(results), time.monotonic() - start


def per_minute(cases: int, seconds: float) -> float:
    return round(cases / seconds * 60, 2) if seconds > 0 else 0.0


# --- the faults ----------------------------------------------------------------------------------

class Chaos:
    def __init__(self, cluster: Cluster, progress: Progress, log: Callable[[str], None],
                 outage_seconds: float, settle_seconds: float) -> None:
        self.cluster = cluster
        self.progress = progress
        self.log = log
        self.outage = outage_seconds
        self.settle = settle_seconds
        self.faults: list[Fault] = []

    async def _recovered(self, fault: Fault, check: Callable[[], Awaitable[bool]],
                         timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await check():
                    fault.recovered_at = time.monotonic()
                    return
            except Exception as exc:  # noqa: BLE001
                fault.errors.append(str(exc)[:200])
            await asyncio.sleep(0.5)
        fault.errors.append(f"not recovered in {timeout:.0f} s")
        fault.recovered_at = time.monotonic()

    async def _next_step(self, since: float) -> bool:
        return self.progress.since(since) is not None or not await _any_live_case_runs()

    FAULTS = ("kill_worker", "kill_replica", "stop_smtp", "sweeps", "restart_redis",
              "end_case_db_connections", "end_all_db_connections", "restart_postgres")

    @staticmethod
    def faults_for(cluster: Cluster) -> tuple[str, ...]:
        """Every fault, but a PostgreSQL restart only on a server the cluster started."""
        return tuple(name for name in Chaos.FAULTS
                     if name != "restart_postgres" or cluster.options.own_postgres)

    async def run(self) -> list[Fault]:
        for inject in (getattr(self, name) for name in self.faults_for(self.cluster)):
            fault = Fault(inject.__name__.replace("_", "-"))
            self.faults.append(fault)
            self.log(f"chaos: {fault.name}")
            fault.injected_at = time.monotonic()
            try:
                await inject(fault)
            except Exception as exc:  # noqa: BLE001 - record it and go on to the next fault
                fault.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                fault.cleared_at = fault.cleared_at or time.monotonic()
                fault.recovered_at = fault.recovered_at or time.monotonic()
            self.log(f"chaos: {fault.name} recovered in {fault.recovery_seconds} s")
            await asyncio.sleep(self.settle)
        return self.faults

    async def kill_worker(self, fault: Fault) -> None:
        """SIGKILL a worker with steps in hand (waiting up to a minute for one) and start
        another; recovered when every run it held has left Running/Pending."""
        name = next(iter(self.cluster.workers))
        held: set[str] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not held:
            for candidate in list(self.cluster.workers):
                held = await _runs_of(self.cluster, candidate)
                if held:
                    name = candidate
                    break
            else:
                await asyncio.sleep(0.1)
        pids = await asyncio.to_thread(self.cluster.kill_worker, name)
        fault.injected_at = time.monotonic()
        fault.detail = f"{name}: {len(pids)} processes, {len(held)} runs in hand"
        fault.affected = len(held)
        await asyncio.to_thread(self.cluster.start_worker)
        fault.cleared_at = time.monotonic()

        async def moved_on() -> bool:
            return not (held & await _stuck_runs())

        await self._recovered(fault, moved_on)

    async def kill_replica(self, fault: Fault) -> None:
        """SIGKILL API replica 1; `outage` later start it again; recovered when the balancer
        routes to it again and a step completes."""
        await asyncio.to_thread(self.cluster.kill_replica, 0)
        fault.detail = f"replica 1 down for {self.outage:.0f} s"
        await asyncio.sleep(self.outage)
        await asyncio.to_thread(self.cluster.start_replica, 0)
        fault.cleared_at = time.monotonic()
        await self._recovered(fault, lambda: self._next_step(fault.cleared_at))

    async def stop_smtp(self, fault: Fault) -> None:
        """No SMTP server for `outage` seconds; recovered when every email queued before it
        came back has been delivered (by the flows or the sweep's retry)."""
        await asyncio.to_thread(self.cluster.stop_mail_sink)
        down_at = time.monotonic()
        await asyncio.sleep(self.outage)
        # Down until a delivery has failed (at most a minute more): an outage no email met
        # would prove nothing.
        while time.monotonic() - down_at < self.outage + 60 and not await _failed_attempts():
            await asyncio.sleep(0.5)
        fault.detail = f"SMTP down for {time.monotonic() - down_at:.0f} s"
        await asyncio.to_thread(self.cluster.start_mail_sink)
        fault.cleared_at = time.monotonic()
        back = datetime.now(UTC)
        fault.affected = await _unsent_before(back)
        await self._recovered(fault, lambda: _all_sent_before(back))

    async def sweeps(self, fault: Fault) -> None:
        """Two sweeps at once, then the same sweep (same as_of) twice."""
        from flows.sweep import rprp_sweep

        as_of = datetime.now(UTC)
        await asyncio.gather(rprp_sweep(), rprp_sweep())
        await rprp_sweep(as_of=as_of)
        await rprp_sweep(as_of=as_of)
        fault.detail = "two at once, then one as_of twice"
        fault.cleared_at = fault.recovered_at = time.monotonic()

    async def restart_redis(self, fault: Fault) -> None:
        await asyncio.to_thread(self.cluster.restart_redis)
        fault.cleared_at = time.monotonic()
        await self._recovered(fault, lambda: self._next_step(fault.cleared_at))

    async def end_case_db_connections(self, fault: Fault) -> None:
        ended = await asyncio.to_thread(end_connections, self.cluster.postgres_url,
                                        self.cluster.case_database)
        fault.detail = f"{ended} connections ended"
        fault.cleared_at = time.monotonic()
        await self._recovered(fault, lambda: self._next_step(fault.cleared_at))

    async def end_all_db_connections(self, fault: Fault) -> None:
        ended = 0
        for name in (self.cluster.prefect_database, self.cluster.case_database):
            ended += await asyncio.to_thread(end_connections, self.cluster.postgres_url, name)
        fault.detail = f"{ended} connections ended (Prefect DB and case DB)"
        fault.cleared_at = time.monotonic()
        await self._recovered(fault, lambda: self._next_step(fault.cleared_at))

    async def restart_postgres(self, fault: Fault) -> None:
        """Fast shutdown of the cluster's own PostgreSQL server (every connection to both
        databases ended; the API replicas, the services, the workers' runs and the portal all
        lose their database), `outage` seconds down, then started again; recovered when a step
        completes after it is back."""
        await asyncio.to_thread(self.cluster.restart_postgres, self.outage)
        fault.detail = f"PostgreSQL stopped (fast shutdown) for {self.outage:.0f} s, restarted"
        fault.cleared_at = time.monotonic()
        await self._recovered(fault, lambda: self._next_step(fault.cleared_at))


async def _stuck_runs() -> set[str]:
    from tasks.orchestration import STALE_STATES, case_runs

    return {str(run.id) for run in await case_runs(STALE_STATES)}


async def _any_live_case_runs() -> bool:
    from prefect.client.schemas.objects import StateType

    from tasks.orchestration import case_runs

    return bool(await case_runs([StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED,
                                 StateType.PAUSED]))


async def _runs_of(cluster: Cluster, worker: str) -> set[str]:
    """Runs Running or Pending under `worker`'s processes (their infrastructure pids)."""
    from prefect.client.schemas.objects import StateType

    from rprp.processes import descendants
    from tasks.orchestration import case_runs

    service = cluster.workers.get(worker)
    if service is None or service.process is None:
        return set()
    pids = {str(pid) for pid, _ in descendants(service.process.pid)}
    runs = await case_runs([StateType.RUNNING, StateType.PENDING])
    return {str(run.id) for run in runs if run.infrastructure_pid in pids}


async def _unsent_before(moment: datetime) -> int:
    """Emails queued before `moment` and not yet delivered."""
    def count() -> int:
        from sqlalchemy import func
        from sqlmodel import col, select

        from infra.db import session_scope
        from models import Outbox
        from tasks.outbox import SENT

        with session_scope() as session:
            return int(session.exec(select(func.count()).select_from(Outbox).where(
                col(Outbox.created_at) < moment, col(Outbox.status) != SENT)).one())

    return await asyncio.to_thread(count)


async def _failed_attempts() -> bool:
    """Whether some email is waiting to be tried again after a failed delivery."""
    def check() -> bool:
        from sqlmodel import col, select

        from infra.db import session_scope
        from models import Outbox
        from tasks.outbox import SENT

        with session_scope() as session:
            return session.exec(select(Outbox.id).where(
                col(Outbox.attempts) > 0, col(Outbox.status) != SENT)).first() is not None

    return await asyncio.to_thread(check)


async def _all_sent_before(moment: datetime) -> bool:
    return await _unsent_before(moment) == 0


async def periodic_sweep(every: float, stop: asyncio.Event, log: Callable[[str], None]) -> int:
    """The force's sweep schedule, compressed: reschedules killed runs, retries held mail."""
    from flows.sweep import SweepFailed, rprp_sweep

    count = 0
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
            break
        except TimeoutError:
            pass
        try:
            await rprp_sweep()
            count += 1
        except SweepFailed as exc:  # a duty failed under a fault: the next sweep tries again
            log(f"chaos: a sweep duty failed: {exc}")
            count += 1
        except Exception as exc:  # noqa: BLE001
            log(f"chaos: the sweep could not run: {type(exc).__name__}: {exc}")
    return count


# --- the account at the end ----------------------------------------------------------------------

def mail_counts(mail_dir: Path) -> tuple[int, Counter[str]]:
    ids: Counter[str] = Counter()
    total = 0
    for path in sorted(mail_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        ids[str(message.get("Message-ID", path.name))] += 1
        total += 1
    return total, ids


def audit(case_ids: list[int], mail_dir: Path) -> dict[str, Any]:
    from sqlalchemy import func
    from sqlmodel import col, select

    from infra.db import session_scope
    from models import AuditEvent, Decision, Outbox
    from tasks.notify import message_id
    from tasks.outbox import SENT

    with session_scope() as session:
        decisions = session.exec(
            select(Decision.case_id, Decision.kind, func.count()).where(
                col(Decision.case_id).in_(case_ids))
            .group_by(col(Decision.case_id), col(Decision.kind))
            .having(func.count() > 1)).all()
        events = session.exec(
            select(AuditEvent.case_id, AuditEvent.action, AuditEvent.from_state,
                   AuditEvent.to_state, func.count()).where(
                col(AuditEvent.case_id).in_(case_ids))
            .group_by(col(AuditEvent.case_id), col(AuditEvent.action),
                      col(AuditEvent.from_state), col(AuditEvent.to_state))
            .having(func.count() > 1)).all()
        rows = session.exec(select(Outbox.key, Outbox.status)).all()
    total, ids = mail_counts(mail_dir)
    sent_keys = {message_id(key) for key, status in rows if status == SENT}
    return {
        "emails_in_outbox": len(rows),
        "emails_received": total,
        "duplicate_emails": sum(n - 1 for n in ids.values() if n > 1),
        "undelivered_emails": sum(1 for _, status in rows if status != SENT)
        + sum(1 for key in sent_keys if key not in ids),
        "duplicate_decisions": sum(n - 1 for *_, n in decisions),
        "duplicate_audit_events": sum(n - 1 for *_, n in events),
        "duplicate_audit_examples": [list(map(str, row)) for row in events[:5]],
    }


async def prefect_leftovers() -> dict[str, int]:
    from prefect.client.schemas.objects import StateType

    from tasks.orchestration import case_runs

    crashed = await case_runs([StateType.CRASHED])
    running = await case_runs([StateType.RUNNING, StateType.PENDING])
    return {"crashed_runs": len(crashed), "running_without_process": len(running)}


def summarise(results: list[CaseResult]) -> dict[str, Any]:
    lost = sum(len(EXPECTED_PAUSES) - len(r.reached) for r in results)
    failed = [r for r in results if r.error]
    return {"cases": len(results), "completed": len(results) - len(failed), "lost_steps": lost,
            "failed_cases": [asdict(r) for r in failed[:10]]}


async def run(cases: int, throughput_cases: int, workdir: Path, log: Callable[[str], None],
              outage_seconds: float = 15.0, settle_seconds: float = 10.0,
              sweep_seconds: float = 15.0, postgres_url: str = "",
              env: dict[str, str] | None = None) -> dict[str, Any]:
    from infra.settings import reset_settings
    from rprp.processes import free_port

    options = ClusterOptions(
        database_prefix=f"rprp_chaos_{os.getpid()}", own_redis=True, drop_databases=True,
        own_mail_sink=True,
        scheduler=False, prefect_port=free_port(), portal_port=free_port(),
        extra_env=CHAOS_ENV | (env or {}))
    if postgres_url:
        options.postgres_url = postgres_url  # a server given: its connections are ended
    elif postgres_binaries() is not None:
        options.own_postgres = True  # a server of its own, which the faults restart
    else:
        options.postgres_url = os.environ.get("RPRP_CLUSTER_POSTGRES_URL", "").strip() \
            or options.postgres_url
    cluster = Cluster(workdir, options)
    t0 = time.monotonic()
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        log("chaos: starting the cluster")
        cluster.up()
        report["cluster_start_seconds"] = round(time.monotonic() - t0, 1)
        os.environ.update(cluster.client_env())
        reset_settings()
        report.update(await _phases(cluster, cases, throughput_cases, log, outage_seconds,
                                    settle_seconds, sweep_seconds))
    finally:
        cluster.down()
    report["wall_seconds"] = round(time.monotonic() - t0, 1)
    return report


async def _phases(cluster: Cluster, cases: int, throughput_cases: int,
                  log: Callable[[str], None], outage_seconds: float, settle_seconds: float,
                  sweep_seconds: float) -> dict[str, Any]:
    # Prefect read its settings when it was imported: point this process's client at the
    # cluster for the phases (the children were started with it in their environment).
    import logging

    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        temporary_settings,
    )

    for name in ("prefect", "prefect.engine", "prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).setLevel(logging.WARNING)  # else every sweep's every task
    report: dict[str, Any] = {}
    with temporary_settings(updates={PREFECT_API_URL: cluster.api_url,
                                     PREFECT_API_AUTH_STRING: cluster.auth_string}):
        progress = Progress()
        throughput: dict[str, Any] = {}
        if throughput_cases:
            second = list(cluster.workers)[1:]
            for name in second:
                cluster.stop_worker(name)
            log(f"chaos: throughput, 1 worker, {throughput_cases} cases")
            results, seconds = await batch(throughput_cases, progress)
            throughput["workers_1"] = {"cases_per_minute": per_minute(throughput_cases, seconds),
                                       "seconds": round(seconds, 1), **summarise(results)}
            for _ in second:
                cluster.start_worker()
            log(f"chaos: throughput, 2 workers, {throughput_cases} cases")
            results, seconds = await batch(throughput_cases, progress)
            throughput["workers_2"] = {"cases_per_minute": per_minute(throughput_cases, seconds),
                                       "seconds": round(seconds, 1), **summarise(results)}
        log(f"chaos: {cases} cases with faults")
        stop = asyncio.Event()
        sweeper = asyncio.create_task(periodic_sweep(sweep_seconds, stop, log))
        chaos = Chaos(cluster, progress, log, outage_seconds, settle_seconds)
        chaos_t0 = time.monotonic()
        # Referrals spread over the faults (and the minute and more a killed worker's runs
        # wait to be found stalled), so that every fault finds cases in flight.
        faults_window = len(Chaos.faults_for(cluster)) * (outage_seconds + settle_seconds) + 90
        driving = asyncio.create_task(batch(cases, progress, spread_seconds=faults_window))
        await asyncio.sleep(min(20.0, settle_seconds * 2))  # cases in flight before the first
        faults = await chaos.run()
        results, seconds = await driving
        # Mail held back by the outage and not yet retried: the next sweeps deliver it.
        deadline = time.monotonic() + 300
        while not await _all_sent_before(datetime.now(UTC)) and time.monotonic() < deadline:
            await asyncio.sleep(1)
        stop.set()
        sweeps = await sweeper
        throughput["chaos_workers_2"] = {"cases_per_minute": per_minute(cases, seconds),
                                         "seconds": round(seconds, 1)}
        case_ids = [r.case_id for r in results]
        report.update(summarise(results))
        report.update(audit(case_ids, cluster.mail_dir))
        report.update(await prefect_leftovers())
        report.update({
            "faults": [f.report(chaos_t0) for f in faults],
            "recovery_seconds": {f.name: f.recovery_seconds for f in faults},
            "throughput": throughput, "sweeps_run": sweeps,
            "settings": {"outage_seconds": outage_seconds, "settle_seconds": settle_seconds,
                         "sweep_seconds": sweep_seconds, "workers": 2, "replicas": 2,
                         "worker_limit": cluster.options.worker_limit,
                         **cluster.options.extra_env},
        })
    return report


def describe(machine: dict[str, Any]) -> str:
    speed = machine.get("speed") or {}
    pace = (f", Prefect's engine imported in {speed['prefect_engine_import_seconds']:.1f} s"
            if "prefect_engine_import_seconds" in speed else "")
    return (f"{machine.get('cores')} cores ({machine.get('cpu')}), "
            f"{machine.get('memory_gb')} GB, Python {machine.get('python')}, "
            f"git {machine.get('git_commit')}{pace}")


def markdown(report: dict[str, Any], command: str, machine: dict[str, Any]) -> str:
    rows = [
        ("cases", report.get("cases")), ("completed", report.get("completed")),
        ("lost steps", report.get("lost_steps")),
        ("emails in the outbox / received", f"{report.get('emails_in_outbox')} / "
                                            f"{report.get('emails_received')}"),
        ("duplicate emails", report.get("duplicate_emails")),
        ("undelivered emails", report.get("undelivered_emails")),
        ("duplicate decisions", report.get("duplicate_decisions")),
        ("duplicate audit events", report.get("duplicate_audit_events")),
        ("runs left Crashed", report.get("crashed_runs")),
        ("runs left Running/Pending", report.get("running_without_process")),
    ]
    lines = [f"# Chaos: {report.get('cases')} cases on the loopback cluster", "",
             f"`{command}` on {describe(machine)}, started {report.get('started')}, "
             f"{report.get('wall_seconds')} s in all.", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| fault | what | recovery (s) | errors |", "|---|---|---|---|"]
    for fault in report.get("faults", []):
        lines.append(f"| {fault['fault']} | {fault['detail']} | {fault['recovery_seconds']} | "
                     f"{len(fault['errors'])} |")
    lines += ["", "| throughput | cases/min | seconds |", "|---|---|---|"]
    for name, figure in report.get("throughput", {}).items():
        lines.append(f"| {name} | {figure['cases_per_minute']} | {figure['seconds']} |")
    return "\n".join(lines) + "\n"


def write(report: dict[str, Any], out: Path, command: str,
          machine: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{datetime.now(UTC).date().isoformat()}-chaos"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps(report | {"command": command, "machine": machine},
                                    indent=2, default=str) + "\n")
    md_path.write_text(markdown(report, command, machine))
    return json_path, md_path
