"""A step caught by a case-DB outage is tried again from the top, in the same run.

PostgreSQL restarted, every connection ended, SQLite busy past its timeout: the step's query
fails with a driver error that says nothing about the case. Left alone, the error fails the
flow run, and a failed run is not picked up again by anything (the sweep reschedules runs whose
process died, not runs that failed), so the case would wait for ever on a step that already
happened (its account stored, its run never woken). Instead the flow's body is run again from
the top after a pause, as a resumed run replays: every step reads the case record first, so
what was done is not done twice, and a form already answered is answered from its stored
input. Each pause doubles, up to `OUTAGE_CEILING_SECONDS` in all; after that the error stands
and the run fails as before.

The exception's text is never logged: a failed INSERT carries what it was writing (an
account, a name). The engines are also made with `hide_parameters` (infra/db.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from sqlalchemy.exc import InterfaceError, OperationalError

T = TypeVar("T")

# What a database that has gone away (or is briefly locked) raises through SQLAlchemy.
DATABASE_OUTAGES: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
OUTAGE_CEILING_SECONDS = 300.0
FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 30.0


async def through_database_outages(body: Callable[[], Awaitable[T]], what: str,
                                   ceiling: float = OUTAGE_CEILING_SECONDS) -> T:
    """`body()`, run again from the top while the case DB does not answer, for at most
    `ceiling` seconds."""
    deadline = time.monotonic() + ceiling
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return await body()
        except DATABASE_OUTAGES as exc:
            if time.monotonic() + pause > deadline:
                raise
            _logger().warning(
                "%s: the case database did not answer (%s); the step runs again from the top "
                "in %.0f s", what, type(exc).__name__, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger (its lines in Prefect's UI), or the module's outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
