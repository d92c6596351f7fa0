"""A flow that asks one question, for tests of how a run asks (tests/integration/test_asking.py).

With `RPRP_TEST_DIE_AFTER_PAUSE` set, its process dies (`os._exit`, as a SIGKILL would leave it)
the moment Prefect accepts the Suspended state, before anything after the pause has run. With
`RPRP_TEST_PREFECT_ORDER` set it asks through Prefect's own `asuspend_flow_run`, which pauses
first and stores the form after, to show the gap `flows.asking.ask` closes. With
`RPRP_TEST_EXPECT` set, the run fails unless the answer it gets is that choice. With
`RPRP_TEST_NO_CALLS_FOR_ANSWERED` set, storing a form or proposing a pause fails the run: a
question answered before must be passed from the run's own record. With
`RPRP_TEST_ANSWER_BEFORE_REPLY` set, the pause is answered the moment Prefect accepts it and the
run hears of it only through a retried proposal, as when the first reply is lost; with
`RPRP_TEST_WITHOUT_THE_EXIT` too, `ask` raises Prefect's refusal as Prefect's suspend does.
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any

import prefect.flow_runs
from prefect import flow
from prefect.input import RunInput

import flows.asking
from flows.asking import ask

_propose = prefect.flow_runs.propose_state


async def _die_once_paused(*args: Any, **kwargs: Any) -> Any:
    state = await _propose(*args, **kwargs)
    if state.is_paused():
        os._exit(9)
    return state


async def _answered_before_the_reply(*args: Any, **kwargs: Any) -> Any:
    state = await _propose(*args, **kwargs)
    if state.is_paused():
        await kwargs["client"].resume_flow_run(kwargs["flow_run_id"],
                                               run_input={"choice": Verdict.YES.value})
        return await _propose(*args, **kwargs)  # the client's retry, after the answer
    return state


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


async def _no_call(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a question answered before went to Prefect again")


if os.environ.get("RPRP_TEST_DIE_AFTER_PAUSE"):
    prefect.flow_runs.propose_state = _die_once_paused  # type: ignore[assignment]
if os.environ.get("RPRP_TEST_ANSWER_BEFORE_REPLY"):
    prefect.flow_runs.propose_state = _answered_before_the_reply  # type: ignore[assignment]
if os.environ.get("RPRP_TEST_WITHOUT_THE_EXIT"):
    flows.asking._exit_if_resumed_elsewhere = _nothing  # type: ignore[assignment]
if os.environ.get("RPRP_TEST_NO_CALLS_FOR_ANSWERED"):
    prefect.flow_runs.propose_state = _no_call  # type: ignore[assignment]
    flows.asking.store_form = _no_call  # type: ignore[assignment]


class Verdict(StrEnum):
    YES = "Yes, go on"
    NO = "No, stop here"


class Question(RunInput):
    choice: Verdict


@flow(name="rprp-test-asking", persist_result=False)
async def asks() -> str:
    form = Question.with_initial_data(description="Is the **question** answered?")
    if os.environ.get("RPRP_TEST_PREFECT_ORDER"):
        answer = await prefect.flow_runs.asuspend_flow_run(wait_for_input=form, key="question")
    else:
        answer = await ask(form, "question")
    expected = os.environ.get("RPRP_TEST_EXPECT")
    if expected and answer.choice.name != expected:
        raise AssertionError(f"asked again, the run got {answer.choice.name}, not {expected}")
    return answer.choice.name
