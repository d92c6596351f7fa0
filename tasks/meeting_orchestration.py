"""The calls a reflective practice meeting makes to Prefect: start its run, wake it.

Only the meeting's id crosses into Prefect: never the child, the family or the record.
"""

from __future__ import annotations

from prefect.client.schemas.objects import FlowRun
from prefect.deployments import arun_deployment

from infra.db import session_scope
from models.meetings import Meeting
from tasks.orchestration import wake_flow_run

MEETING_DEPLOYMENT = "rprp-rpm/rprp-rpm"


async def start_meeting_flow(meeting_id: int) -> str:
    """One flow run per meeting; a second start returns the first run (idempotency key)."""
    run: FlowRun = await arun_deployment(
        MEETING_DEPLOYMENT, parameters={"meeting_id": meeting_id}, timeout=0,
        idempotency_key=f"rprp-rpm-{meeting_id}", flow_run_name=f"RPM-{meeting_id:06d}",
        as_subflow=False, tags=["rprp", "rpm"])
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        if meeting is not None and meeting.flow_run_id != str(run.id):
            meeting.flow_run_id = str(run.id)
            session.add(meeting)
    return str(run.id)


async def wake_meeting(meeting_id: int, attempts: int = 5) -> bool:
    """Wake the meeting's run after the portal changed its record (a reply, the log signed)."""
    with session_scope() as session:
        meeting = session.get(Meeting, meeting_id)
        flow_run_id = meeting.flow_run_id if meeting else None
    return await wake_flow_run(flow_run_id, attempts) if flow_run_id else False
