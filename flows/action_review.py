"""An action-plan review, started by the sweep when the report's review period is up.

The reviewer records a note and an outcome for each open action in Prefect's Resume form; when
every action is closed the case closes and its lifecycle run is woken to finish.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.asking import ask
from flows.outages import through_database_outages
from flows.run_versions import this_run
from models.forms import action_review_form
from tasks.action_reviews import record_review, review_wait
from tasks.briefing import describe
from tasks.code_version import running_under, source_version
from tasks.notify import deliver_pending
from tasks.orchestration import wake_case


@flow(name="rprp-action-review", version=source_version(), log_prints=False,
      persist_result=False)
async def rprp_action_review(case_id: int, review_number: int) -> str:
    """Ask review `review_number` of case `case_id` until every action is recorded."""
    with running_under(await this_run()):
        return await through_database_outages(lambda: review(case_id, review_number),
                                              f"case {case_id} review {review_number}")


async def review(case_id: int, review_number: int) -> str:
    logger = get_run_logger()
    run_id = flow_run.get_id()
    while True:
        step = review_wait(case_id, review_number, str(run_id) if run_id else None)
        await deliver_pending()
        if step is None:
            logger.info("Review %s of case %s is complete", review_number, case_id)
            return "complete"
        wait, action_ids = step
        form = action_review_form(action_ids).with_initial_data(
            description=describe(case_id, wait))
        answer = await ask(form, wait.key)
        if record_review(case_id, review_number, wait.key, answer):
            await deliver_pending()
            await wake_case(case_id)
            return "case closed"
