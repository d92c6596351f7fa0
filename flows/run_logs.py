"""A suspended run is waiting, not failing: Prefect's flow engine logs the end of every attempt
that did not complete ("Finished in state Suspended(type=PAUSED)") as ERROR, in the worker's log
and the Prefect UI. The flow modules install this filter (through flows/asking.py, which every
flow that waits pauses through) so a suspension is logged at INFO, and so is the end of a
process whose run was resumed while it paused ("Finished in state Resuming").
"""

from __future__ import annotations

import logging

ENGINE_LOGGER = "prefect.flow_runs"  # the engine's flow-run logger (prefect.logging.loggers)
WAITING = ("Finished in state Suspended", "Finished in state Paused",
           "Finished in state Resuming")


class SuspensionIsNotAnError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO and record.getMessage().startswith(WAITING):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


def log_suspensions_as_info() -> None:
    """Idempotent: a module imported twice installs one filter."""
    logger = logging.getLogger(ENGINE_LOGGER)
    if not any(isinstance(f, SuspensionIsNotAnError) for f in logger.filters):
        logger.addFilter(SuspensionIsNotAnError())
