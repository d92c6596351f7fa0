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
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar, cast
from uuid import UUID

import httpx
import orjson
from prefect._internal.pydantic.v2_schema import create_v2_schema
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import asuspend_flow_run
from prefect.input import RunInput
from prefect.input.run_input import Keyset, keyset_from_paused_state
from prefect.runtime import flow_run
from prefect.states import Suspended

F = TypeVar("F", bound=RunInput)


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
    return await asuspend_flow_run(wait_for_input=_stored(form), key=key)


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
