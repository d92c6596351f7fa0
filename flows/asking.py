"""How a run asks a person for an answer: it suspends with a form that is already stored.

Prefect's `suspend_flow_run(wait_for_input=...)` pauses the run first and stores the form's
schema after. A process killed between the two (a worker SIGKILLed, a machine lost) leaves a
run Prefect shows as Suspended whose Resume is refused for want of a schema, and which nothing
reschedules, since it is not Running: the case waits for ever. So the run stores the form
itself, under the keys Prefect's pause will use, before it asks Prefect to pause, and Prefect's
own store after the pause finds it done. Killed before the pause, the run is still Running and
the sweep reschedules it (tasks/orchestration.py `recover_stalled_runs`); killed after, the form
is there to answer.

A replay passes the questions answered before without a call to Prefect: the run's own record,
read when its process started, lists every pause key it has been resumed from, so `ask` loads
the answer at once instead of storing the form again (409) and proposing a pause that Prefect
would refuse. Each resumed step replays all the earlier questions, so this is on the hot path.

And a pause answered before this process heard that Prefect accepted it (the first reply was
lost and the client's retry found the run already resumed: seen on a busy SQLite Prefect
database, a wake given at once) ends this process quietly: the run is Scheduled, and the worker
starts it again to take the answer. Prefect's own suspend raises "unexpected state" there: the
process ends in an error, with a traceback in the worker's log, and the run goes on only
because Prefect then refuses the Failed state it proposes. The same holds for the waits with
no form (`suspend`).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, cast
from uuid import UUID

import httpx
import orjson
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import Pause
from prefect.flow_runs import asuspend_flow_run
from prefect.input import RunInput
from prefect.input.run_input import Keyset, keyset_from_paused_state
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Suspended

from flows.run_logs import log_suspensions_as_info

F = TypeVar("F", bound=RunInput)

log_suspensions_as_info()


async def ask(form: type[F], key: str) -> F:
    """Suspend the run until `form` is answered (or return the answer a replay finds given).

    `key` names this question in the run: Prefect refuses a key it has resumed before and hands
    back that answer instead, which is how a replay passes questions already answered.
    """
    run_id = flow_run.get_id()
    assert run_id, "only a flow run can ask"
    keyset = keyset_from_paused_state(Suspended(pause_key=key))
    if answered(key):
        return await form.aload(keyset)
    await store_form(form, keyset, UUID(str(run_id)))
    try:
        return await asuspend_flow_run(wait_for_input=_stored(form), key=key)
    except RuntimeError:
        await _exit_if_resumed_elsewhere(key)
        raise


async def suspend(key: str) -> None:
    """Suspend the run with no form, until it is woken (`tasks.orchestration.wake`); a replay
    passes a wait it was woken from."""
    if answered(key):
        return
    try:
        await asuspend_flow_run(key=key)
    except RuntimeError:
        await _exit_if_resumed_elsewhere(key)
        raise


async def _exit_if_resumed_elsewhere(key: str) -> None:
    """Prefect refused the pause with a state it did not expect. If the run has paused under
    `key` and is Scheduled again (answered, or woken, before this process heard of its pause),
    its next process takes it from there: this one stops here and changes nothing."""
    run_id = flow_run.get_id()
    async with get_client() as client:
        run = await client.read_flow_run(UUID(str(run_id)))
    if (run.state is not None and run.state.is_scheduled()
            and key in (run.empirical_policy.pause_keys or ())):
        get_run_logger().info("Answered before this process heard of its pause: the run goes "
                              "on in its next process")
        raise Pause(state=run.state)


def answered(key: str) -> bool:
    """Whether this run has paused under `key` before: Prefect adds a pause's key to the run's
    `pause_keys` when it accepts the pause and refuses that key ever after, loading the answer
    instead, so the answer is there (Suspended runs resume only with one)."""
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    return run is not None and key in (run.empirical_policy.pause_keys or ())


async def store_form(form: type[RunInput], keyset: Keyset, flow_run_id: UUID) -> None:
    """Store the form's schema and description as Prefect's pause would; a part already
    stored (a replay, or a run killed half-way through this) is kept as it is."""
    schema = create_v2_schema(form.__name__, model_base=form)
    values: dict[Literal["schema", "description"], Any] = {"schema": schema}
    description = form._description  # Prefect's own attribute for the text above the form
    if isinstance(description, str) and description:
        values["description"] = description
    async with get_client() as client:
        for part, value in values.items():
            try:
                await client.create_flow_run_input(flow_run_id, keyset[part],
                                                   orjson.dumps(value).decode())
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != httpx.codes.CONFLICT:
                    raise


def _stored(form: type[F]) -> type[F]:
    """The form as Prefect's pause sees it: the same fields, title and description, with
    nothing left to store (`ask` stored it before the pause)."""

    async def asave(cls: type[RunInput], keyset: Keyset, flow_run_id: UUID | None = None) -> None:
        """Stored already, before the pause."""

    stored = type(form.__name__, (form,), {"asave": classmethod(asave),
                                           "__module__": form.__module__})
    return cast(type[F], stored)
