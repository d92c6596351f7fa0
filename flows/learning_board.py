"""The monthly learning board (`rprp-learning-board`): on the first working day of each month
(Europe/London, England and Wales bank holidays skipped) it prepares the board's pack for the
previous month, emails the board's members a link and the figures, and delivers the mail.

Prefect's cron cannot say "first working day", so the deployment runs on weekday mornings of
days 1-7 and this flow skips every day that is not the month's first working day. `as_of` runs
it at another instant (tests, operators); `month` (YYYY-MM) prepares that month's pack whatever
the day. Idempotent: the pack is kept once per month and each member's email has its own key, so
a second run, or a replay, sends nothing twice. Prefect sees the month and counts only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from infra.db import session_scope
from tasks import learning_board as board
from tasks.calendar import LONDON
from tasks.code_version import source_version
from tasks.learning_board import Month
from tasks.notify import DeliveryResult, deliver_pending

BUILD_PACK = "build-board-pack"
EMAIL_MEMBERS = "email-board-members"
DELIVER_MAIL = "deliver-mail"


@task(name=BUILD_PACK, task_run_name=BUILD_PACK + " {month}", persist_result=False,
      cache_policy=NO_CACHE)
def build_pack(month: str, as_of: datetime) -> dict[str, Any]:
    """The month's pack: built and kept on the first run, found on every later one."""
    with session_scope() as session:
        pack, built = board.prepare(session, Month.parse(month),
                                    as_of.astimezone(LONDON).date(), as_of)
        figures = board.figures_of(pack)
    return {"month": month, "built": built, "no_cases": figures.no_cases,
            "cases_referred": figures.cases_referred, "reports_filed": figures.reports_filed,
            "new_items": len(figures.new_items), "closed_items": len(figures.closed_items),
            "overdue_items": len(figures.overdue_items)}


@task(name=EMAIL_MEMBERS, task_run_name=EMAIL_MEMBERS + " {month}", persist_result=False,
      cache_policy=NO_CACHE)
def email_members(month: str) -> int:
    """Queue one email per member (RPRP_LEARNING_BOARD_MEMBERS); none queued twice."""
    with session_scope() as session:
        pack = board.pack_of(session, Month.parse(month))
        assert pack is not None, "the pack is built before its emails"
        return board.queue_emails(session, pack)


@task(name=DELIVER_MAIL, task_run_name=DELIVER_MAIL, persist_result=False, cache_policy=NO_CACHE)
async def deliver_mail() -> DeliveryResult:
    """Send what was queued; the outbox retries what fails (RPRP_SMTP_MAX_ATTEMPTS)."""
    return await deliver_pending()


@flow(name="rprp-learning-board", version=source_version(), log_prints=False,
      persist_result=False)
async def rprp_learning_board(as_of: datetime | None = None,
                              month: str | None = None) -> dict[str, object]:
    """Prepare and send the learning board's pack for the previous month, on the month's first
    working day; other days do nothing."""
    logger = get_run_logger()
    instant = (as_of or datetime.now(UTC)).astimezone(UTC)
    today = instant.astimezone(LONDON).date()
    if month is None:
        if not board.is_board_day(today):
            logger.info("%s is not the month's first working day: nothing to do",
                        today.isoformat())
            return {"skipped": "not the month's first working day", "as_of": today.isoformat()}
        chosen = Month.before(today)
    else:
        chosen = Month.parse(month)
    summary: dict[str, object] = dict(build_pack(chosen.key, instant))
    members = board.members()
    if members:
        summary["emails_queued"] = email_members(chosen.key)
    else:
        summary["emails_queued"] = 0
        logger.info("No board members are set (RPRP_LEARNING_BOARD_MEMBERS): the pack is on "
                    "its page only")
    delivered = await deliver_mail()
    summary["sent"] = delivered.sent
    logger.info("Learning board pack for %s: %s", chosen.key, summary)
    return summary
