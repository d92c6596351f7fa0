"""The morning sweep: the only thing in the system that watches the clock.

Scheduled each working-day morning (Europe/London); takes `as_of` so tests and operators can run
it at any instant. Idempotent: running it twice sends nothing twice.

Each duty (tasks/deadline_sweep.py:DUTIES) is its own task in the run graph, named in the
process's words, then `deliver-mail` sends what they queued. A duty that fails is a Failed task
run; the other duties still do their work, and the run then ends Failed, naming the duty.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.run_versions import this_run
from tasks import deadline_sweep
from tasks.calendar import LONDON, england_and_wales
from tasks.code_version import running_under, source_version
from tasks.deadline_sweep import DELIVER_MAIL, Duty, SweepReport, perform, sweep_instant
from tasks.notify import DeliveryResult, deliver_pending
from tasks.outbox import failed_count


class DutyFailed(Exception):
    """Raised by a duty's task so its run is Failed in the graph; carries what the duty did
    before it failed. Its message names the duty only: Prefect logs it."""

    def __init__(self, duty: str, part: SweepReport) -> None:
        super().__init__(f"the sweep's duty {duty} failed; the other duties still ran")
        self.duty = duty
        self.part = part

    def __reduce__(self) -> tuple[type[DutyFailed], tuple[str, SweepReport]]:
        return (DutyFailed, (self.duty, self.part))  # picklable, should Prefect store it


class SweepFailed(Exception):
    """Raised after every duty has run, when one or more failed, so the run ends Failed and
    names them. `summary` is the whole sweep's result, errors included."""

    def __init__(self, summary: dict[str, Any], failed: list[str]) -> None:
        super().__init__(f"Sweep duties failed: {', '.join(failed)} (the others did their work)")
        self.summary = summary
        self.failed = failed

    def __reduce__(self) -> tuple[type[SweepFailed], tuple[dict[str, Any], list[str]]]:
        return (SweepFailed, (self.summary, self.failed))


def _duty_task(duty: Duty) -> Task[[datetime], Coroutine[Any, Any, SweepReport]]:
    """The duty as a task of its own name; results stay in memory (counts, no person)."""

    async def run(as_of: datetime) -> SweepReport:
        part = SweepReport(as_of=as_of.isoformat())
        if not await perform(duty, as_of, part):
            raise DutyFailed(duty.name, part)
        return part

    run.__doc__ = duty.run.__doc__
    return task(name=duty.name, task_run_name=duty.name + " as of {as_of:%Y-%m-%d %H:%M}",
                persist_result=False, cache_policy=NO_CACHE, log_prints=False)(run)


@task(name=DELIVER_MAIL, task_run_name=DELIVER_MAIL, persist_result=False, cache_policy=NO_CACHE)
async def deliver_mail() -> DeliveryResult:
    """Send what the duties queued; the outbox retries what fails (RPRP_SMTP_MAX_ATTEMPTS)."""
    return await deliver_pending()


async def _run_duty(duty: Duty, as_of: datetime, report: SweepReport) -> None:
    try:
        report.merge(await _duty_task(duty)(as_of))
    except DutyFailed as failed:
        report.merge(failed.part)
    except Exception as exc:  # Prefect could not run the task at all
        report.duty_failed(duty.name, exc)


async def _deliver(report: SweepReport) -> dict[str, int]:
    """Deliver mail (isolated like a duty) and count what was given up, as a warning."""
    mail = {"sent": 0, "still_pending": 0, "mail_given_up": 0, "failed_mail": 0}
    try:
        delivered = await deliver_mail()
        mail.update(sent=delivered.sent, still_pending=delivered.still_pending,
                    mail_given_up=delivered.given_up)
        mail["failed_mail"] = failed_count()
    except Exception as exc:
        report.duty_failed(DELIVER_MAIL, exc)
    if mail["failed_mail"]:
        report.warnings.append(
            f"{DELIVER_MAIL}: {mail['failed_mail']} email(s) failed after their last attempt "
            f"({mail['mail_given_up']} this run): PSD sees them on the case pages")
    return mail


@flow(name="rprp-sweep", version=source_version(), log_prints=False, persist_result=False)
async def rprp_sweep(as_of: datetime | None = None) -> dict[str, object]:
    """Send due reminders, move missed deadlines on, start due reviews, deliver mail."""
    with running_under(await this_run()):
        return await sweep(as_of)


async def sweep(as_of: datetime | None) -> dict[str, object]:
    logger = get_run_logger()
    scheduled = as_of is None
    instant = sweep_instant(as_of)
    if scheduled and not england_and_wales().is_working_day(instant.astimezone(LONDON).date()):
        logger.info("Not a working day in England and Wales: nothing to do")
        report = SweepReport(as_of=instant.isoformat())
        mail = await _deliver(report)
        summary: dict[str, object] = {"skipped": "not a working day", **mail,
                                      "errors": report.errors, "warnings": report.warnings}
    else:
        report = SweepReport(as_of=instant.isoformat())
        for duty in deadline_sweep.DUTIES:  # read at run time: one place lists the duties
            await _run_duty(duty, instant, report)
        mail = await _deliver(report)
        summary = {**report.as_dict(), **mail}
    logger.info("Sweep as of %s: %s", instant.astimezone(UTC).isoformat(), summary)
    for warning in report.warnings:
        logger.warning("%s", warning)
    if report.errors:
        for error in report.errors:
            logger.error("%s", error)
        raise SweepFailed(summary, report.failed_duties)
    return summary
