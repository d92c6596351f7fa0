"""The morning sweep: the only thing in the system that watches the clock.

Scheduled each working-day morning (Europe/London); takes `as_of` so tests and operators can run
it at any instant. Idempotent: running it twice sends nothing twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger

from tasks.calendar import LONDON, england_and_wales
from tasks.deadline_sweep import sweep
from tasks.notify import deliver_pending


@flow(name="rprp-sweep", log_prints=False, persist_result=False)
async def rprp_sweep(as_of: datetime | None = None) -> dict[str, object]:
    """Send due reminders, move missed deadlines on, start due reviews, deliver mail."""
    logger = get_run_logger()
    scheduled = as_of is None
    as_of = as_of or datetime.now(UTC)
    if scheduled and not england_and_wales().is_working_day(as_of.astimezone(LONDON).date()):
        logger.info("Not a working day in England and Wales: nothing to do")
        delivered = await deliver_pending()
        return {"skipped": "not a working day", "sent": delivered.sent}
    report = await sweep(as_of)
    delivered = await deliver_pending()
    summary = {**report.as_dict(), "sent": delivered.sent, "still_pending": delivered.still_pending}
    logger.info("Sweep as of %s: %s", as_of.isoformat(), summary)
    return summary
