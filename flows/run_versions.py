"""The versions a flow run runs under, read from Prefect once at the start of the run, so each
audit event the run writes records them (tasks/code_version.py)."""

from __future__ import annotations

import logging

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound

from tasks.code_version import RunVersions

log = logging.getLogger("rprp.run_versions")


async def this_run() -> RunVersions:
    """The running flow's version and its deployment's ("" where there is none, e.g. a flow
    called in-process)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return RunVersions("", "")
    flow_version = (context.flow.version if context.flow else None) or ""
    deployment_version = ""
    if context.flow_run.deployment_id is not None:
        try:
            async with get_client() as client:
                deployment = await client.read_deployment(context.flow_run.deployment_id)
            deployment_version = deployment.version or ""
        except ObjectNotFound:
            log.info("the run's deployment is gone: its version is not recorded")
    return RunVersions(flow_version, deployment_version)
