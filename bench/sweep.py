"""Figure 3, the sweep: a case DB seeded with K open cases (bulk inserts of Officer, Case and
Deadline rows, deadlines spread over a year, a known number due), then
tasks.deadline_sweep.sweep(as_of) and tasks.notify.deliver_pending timed, twice: the second run
must send nothing. Each run gets a fresh case DB and its own SMTP sink.

Due cases whose account deadline passed are woken: a few of them (--wake-targets) carry a real
flow run suspended without a form (bench.bare.wake_target), the rest have no flow run, so the sweep
flags them for a later wake, as it does for any case it cannot wake now.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.stats import summary
from bench.watch import RunWatcher

PAST_DAYS = 14  # deadlines run from as_of - 14 days to as_of + 351 days
STATES = ("awaiting_account", "fact_finding_decision", "discussion_scheduling", "discussion_held")


def _expected(k: int, as_of: datetime) -> dict[str, Any]:
    """What the sweep must find, computed from the seed plan with the calendar."""
    from infra.settings import get_settings
    from tasks.calendar import LONDON, england_and_wales
    from tasks.deadline_sweep import COMPLAINANT_LEAD, reminder_day

    calendar = england_and_wales()
    offsets = get_settings().reminder_offsets
    today = as_of.astimezone(LONDON).date()
    out = {"reminders": 0, "missed_deadlines": 0, "overdue_reminders": 0,
           "complainant_letters": 0}
    for i in range(k):
        due = _due(i, k, as_of)
        state = STATES[i % 4]
        if state == "awaiting_account":
            if due < as_of:
                out["missed_deadlines"] += 1
            elif due <= as_of + timedelta(days=21):
                due_day = due.astimezone(LONDON).date()
                if any(reminder_day(calendar, due_day, n) <= today for n in offsets):
                    out["reminders"] += 1
        elif due < as_of:
            out["overdue_reminders"] += 1
        if _complaint(i) and due <= as_of + COMPLAINANT_LEAD:
            out["complainant_letters"] += 1
    out["emails"] = (out["reminders"] + 2 * out["missed_deadlines"]
                     + 2 * out["overdue_reminders"] + out["complainant_letters"])
    return out


def _due(i: int, k: int, as_of: datetime) -> datetime:
    return as_of + timedelta(days=-PAST_DAYS + 365.0 * i / k, hours=(i * 7) % 24)


def _complaint(i: int) -> bool:
    return i % 10 == 0


def seed(url: str, k: int, as_of: datetime, wake_runs: list[str]) -> None:
    """K open cases with one officer each and their deadlines, in bulk."""
    from sqlalchemy import insert, text
    from sqlmodel import Session

    from infra.db import engine_for
    from models import Case, Deadline, Officer
    from models.enums import (
        CaseState,
        DeadlineKind,
        DeadlineStatus,
        Origin,
        Rank,
        ReviewBody,
        ReviewerBasis,
        Route,
    )

    kinds = {"awaiting_account": DeadlineKind.ACCOUNT,
             "fact_finding_decision": DeadlineKind.DECISION,
             "discussion_scheduling": DeadlineKind.DISCUSSION,
             "discussion_held": DeadlineKind.REPORT}
    today = as_of.date()
    officers, cases, deadlines = [], [], []
    wake = iter(wake_runs)
    for i in range(k):
        n = i + 1
        officers.append(Officer(id=n, collar_number=f"S{n:07d}", name=f"Officer {n}",
                                email=f"officer{n}@force.example",
                                rank=Rank.CONSTABLE).model_dump())
        state = STATES[i % 4]
        due = _due(i, k, as_of)
        complaint = _complaint(i)
        flow_run_id = None
        if state == "awaiting_account" and due < as_of:
            flow_run_id = next(wake, None)
        cases.append(Case(
            id=n, state=CaseState(state), route=Route.SEVERITY_ASSESSMENT,
            origin=Origin.PUBLIC_COMPLAINT if complaint else Origin.CONDUCT_MATTER,
            concern_reported_on=today - timedelta(days=30), referred_on=today - timedelta(days=20),
            incident_on=today - timedelta(days=40), allegation_category="Discreditable conduct",
            rprp_reason="Rude manner towards a member of the public",
            behaviour_summary=f"Seeded case {n} for the sweep benchmark.",
            public_summary="An officer spoke discourteously to a member of the public.",
            aa_decision_maker="DI Appropriate Authority", officer_id=n,
            reviewer_name="Sgt Sam Reviewer", reviewer_email="sgt.reviewer@force.example",
            reviewer_basis=ReviewerBasis.LINE_MANAGER,
            complainant_name="Jo Public" if complaint else None,
            complainant_email=f"complainant{n}@example.org" if complaint else None,
            complainant_review_body=ReviewBody.LOCAL_POLICING_BODY if complaint else None,
            flow_run_id=flow_run_id, transition_count=3, created_at=as_of - timedelta(days=20),
            updated_at=as_of - timedelta(days=1)).model_dump())
        kind = kinds[state]
        deadlines.append({"case_id": n, "kind": kind, "round": 1 if kind is DeadlineKind.ACCOUNT
                          else 3, "due_at": due, "calendar_version": "bench",
                          "status": DeadlineStatus.OPEN, "met_at": None})
        if complaint:
            deadlines.append({"case_id": n, "kind": DeadlineKind.COMPLAINANT_UPDATE, "round": 1,
                              "due_at": due, "calendar_version": "bench",
                              "status": DeadlineStatus.OPEN, "met_at": None})
    engine = engine_for(url)
    with Session(engine) as session:
        for table, rows in ((Officer, officers), (Case, cases), (Deadline, deadlines)):
            for start in range(0, len(rows), 5000):
                session.execute(insert(table), rows[start:start + 5000])
        if engine.dialect.name == "postgresql":
            for table in ("officer", "rprp_case"):
                session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))"))
        session.commit()


async def deliver_all(expected: int) -> tuple[int, int]:
    """deliver_pending until nothing is left (it sends up to 200 a call); (sent, calls)."""
    from tasks.notify import deliver_pending

    sent = calls = 0
    for _ in range(expected // 200 + 10):
        result = await deliver_pending()
        calls += 1
        sent += result.sent
        if result.still_pending == 0 or result.sent == 0:
            break
    return sent, calls


def _switch(url: str, smtp_port: int) -> dict[str, str | None]:
    from infra.settings import reset_settings

    previous = {k: os.environ.get(k) for k in ("RPRP_DATABASE_URL", "RPRP_SMTP_PORT")}
    os.environ["RPRP_DATABASE_URL"] = url
    os.environ["RPRP_SMTP_PORT"] = str(smtp_port)
    reset_settings()
    return previous


def _restore(previous: dict[str, str | None]) -> None:
    from infra.settings import reset_settings

    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_settings()


async def one_run(stack: Any, k: int, label: str, wake_targets: int,
                  profile: bool = False) -> dict[str, Any]:
    from prefect.deployments import arun_deployment

    from bench.stack import free_port, migrate
    from tasks.deadline_sweep import sweep

    as_of = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    port = free_port()
    sink = stack.start_mail_sink(port, stack.workdir / f"mail-{label}", name=f"mailsink-{label}")
    url = stack.databases.case_db(label)
    expected = _expected(k, as_of)
    wake_targets = min(wake_targets, expected["missed_deadlines"])
    try:
        migrate(url)
        runs = [await arun_deployment("bench-wake-target/bench-wake-target", timeout=0,
                                      as_subflow=False, tags=["bench"])
                for _ in range(wake_targets)]
        run_ids = [str(r.id) for r in runs]
        t0 = time.perf_counter()
        await asyncio.to_thread(seed, url, k, as_of, run_ids)
        seed_seconds = time.perf_counter() - t0
        async with RunWatcher(0.5) as watcher:
            await asyncio.gather(*(watcher.next_pause(r, None, 300, "a wake target to wait")
                                   for r in run_ids))
            previous = _switch(url, port)
            try:
                profiler = None
                if profile:
                    from pyinstrument import Profiler

                    profiler = Profiler(interval=0.001, async_mode="enabled")
                    profiler.start()
                t0 = time.perf_counter()
                first = await sweep(as_of)
                sweep_seconds = time.perf_counter() - t0
                if profiler is not None:
                    profiler.stop()
                t0 = time.perf_counter()
                sent, calls = await deliver_all(expected["emails"])
                deliver_seconds = time.perf_counter() - t0
                t0 = time.perf_counter()
                second = await sweep(as_of)
                second_seconds = time.perf_counter() - t0
                sent_again, _ = await deliver_all(0)
            finally:
                _restore(previous)
            finals = await asyncio.gather(*(watcher.final(r, 300, "a woken target to finish")
                                            for r in run_ids), return_exceptions=True)
        resumed = sum(1 for f in finals if f == "Completed")
        profile_text = ""
        if profiler is not None:
            from pyinstrument.renderers import ConsoleRenderer

            profile_text = ConsoleRenderer(unicode=False, color=False, show_all=False,
                                           time="percent_of_total").render(
                profiler.last_session)[:8000]
    finally:
        stack.databases.forget_case_db(url)
        stack.stop_service(sink)
    got = first.as_dict()
    checks = {key: got[key] == expected[key] for key in
              ("reminders", "missed_deadlines", "overdue_reminders", "complainant_letters")}
    checks["emails"] = sent == expected["emails"]
    checks["woken"] = first.woken == resumed == wake_targets
    checks["second_run_sends_nothing"] = (
        sent_again == 0 and second.reminders == 0 and second.missed_deadlines == 0
        and second.overdue_reminders == 0 and second.complainant_letters == 0
        and second.woken == 0)
    return {
        "open_cases": k,
        "seed_seconds": round(seed_seconds, 3),
        "sweep_seconds": round(sweep_seconds, 3),
        "deliver_seconds": round(deliver_seconds, 3),
        "deliver_calls": calls,
        "second_sweep_seconds": round(second_seconds, 3),
        "cases_read": first.cases_read,
        "cases_read_per_second": round(first.cases_read / sweep_seconds, 1),
        "open_cases_per_second": round(k / sweep_seconds, 1),
        "first": got,
        "second": second.as_dict(),
        "emails_sent": sent,
        "emails_sent_second_run": sent_again,
        "expected": expected,
        "wake_targets": wake_targets,
        "due_cases_resumed": resumed,
        "checks": checks,
        "profile": profile_text,
    }


async def run(stack: Any, sizes: list[int], repeats: int, wake_targets: int, log: Any,
              profile: bool = True) -> dict[str, Any]:
    by_size: dict[str, Any] = {}
    profile_text = ""
    for k in sizes:
        runs = []
        for r in range(repeats):
            log(f"sweep: K={k:,}, repeat {r + 1}/{repeats} ...")
            result = await one_run(stack, k, f"sweep_{k}_{r}", wake_targets)
            log(f"  sweep {result['sweep_seconds']:.2f} s, deliver {result['deliver_seconds']:.2f} s"
                f" ({result['emails_sent']} emails), second run {result['second_sweep_seconds']:.2f}"
                f" s sending {result['emails_sent_second_run']}")
            runs.append(result)
        first = runs[0]
        by_size[str(k)] = {
            "open_cases": k,
            "repeats": repeats,
            "sweep": summary([r["sweep_seconds"] for r in runs]),
            "deliver_pending": summary([r["deliver_seconds"] for r in runs]),
            "second_sweep": summary([r["second_sweep_seconds"] for r in runs]),
            "seed": summary([r["seed_seconds"] for r in runs]),
            "cases_read_per_second": summary([r["cases_read_per_second"] for r in runs],
                                             unit="/s"),
            "open_cases_per_second": summary([r["open_cases_per_second"] for r in runs],
                                             unit="/s"),
            "cases_read": first["cases_read"],
            "reminders_queued": first["first"]["reminders"],
            "missed_deadlines": first["first"]["missed_deadlines"],
            "overdue_reminders": first["first"]["overdue_reminders"],
            "complainant_letters": first["first"]["complainant_letters"],
            "due_cases_resumed": first["due_cases_resumed"],
            "due_cases_flagged_for_a_later_wake": first["first"]["missed_deadlines"]
            - first["first"]["woken"],
            "emails_sent": first["emails_sent"],
            "emails_sent_second_run": max(r["emails_sent_second_run"] for r in runs),
            "expected": first["expected"],
            "checks_passed": all(all(r["checks"].values()) for r in runs),
            "checks": [r["checks"] for r in runs],
            "runs": [{k2: v for k2, v in r.items() if k2 != "profile"} for r in runs],
        }
    if profile and sizes:
        k = max(sizes)
        log(f"sweep: one more K={k:,} run under pyinstrument (not counted)")
        profile_text = (await one_run(stack, k, f"sweep_{k}_profile", wake_targets,
                                      profile=True))["profile"]
    scaling = None
    if len(sizes) >= 2:
        small, large = str(min(sizes)), str(max(sizes))
        t_small = by_size[small]["sweep"]["median"]
        t_large = by_size[large]["sweep"]["median"]
        if t_small:
            scaling = {"sizes": [int(small), int(large)],
                       "size_ratio": int(large) / int(small),
                       "time_ratio": round(t_large / t_small, 2),
                       "seconds_per_1000_cases": {small: round(t_small / int(small) * 1000, 3),
                                                  large: round(t_large / int(large) * 1000, 3)}}
    rates = [by_size[str(k)]["cases_read_per_second"]["median"] or 0 for k in sizes]
    return {
        "sizes": sizes,
        "by_size": by_size,
        "scaling": scaling,
        "profile": profile_text,
        "target": ">= 500 cases read per second; linear in K; second run sends nothing",
        "met": bool(rates) and min(rates) >= 500 and all(
            v["checks_passed"] for v in by_size.values()),
    }
