"""Prefect's own scheduler creates the sweep's runs, and a worker completes them.

No reminder is sent and no deadline enforced unless the scheduled sweep runs. It once never ran
in any installation: SQLAlchemy 2.1 broke Prefect 3.8's scheduler service, which failed every
minute in the server's log while every test (which call the sweep directly) passed. This test
runs a Prefect server the way `rprp up` does (SQLite, services on), registers the deployments
from prefect.yaml with deployments/deploy.py, and waits for the server itself to schedule them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.calendar import england_and_wales
from tests.support.stack import (
    ROOT,
    PrefectServer,
    Worker,
    eventually,
    log_failures,
    make_prefect_server,
    worker_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.long(seconds=40)]

LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def scheduling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A server of its own, as `rprp up` starts it: SQLite, with the scheduler service on. Its
    loop runs every 5 s instead of Prefect's 60, so a schedule added by a test is seen at once
    (the loop's interval is a tuning; what is proved is that the service creates the runs)."""
    server = make_prefect_server(tmp_path_factory.mktemp("scheduler") / "prefect",
                                 auth_string="",  # what it proves is the scheduler, not access
                                 services={"scheduler": True},
                                 extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"})
    server.start()
    yield server
    server.stop()


def sweep_schedule() -> dict:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    (sweep,) = [d for d in config["deployments"] if d["name"] == "rprp-sweep"]
    (schedule,) = sweep["schedules"]
    return schedule


def server_failures(server: PrefectServer) -> list[str]:
    return log_failures(server.log_path)


async def sweep_runs(state_types: list[StateType]) -> list:
    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["rprp-sweep"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=state_types))),
        )


async def scheduled_or_failed(server: PrefectServer) -> list:
    """The sweep's scheduled runs; fails at once, with the server's words, if it is failing."""
    assert server_failures(server) == [], "the Prefect server's log has errors"
    return await sweep_runs([StateType.SCHEDULED])


async def test_the_server_schedules_the_morning_sweep_on_working_days(
        scheduling_server: PrefectServer) -> None:
    schedule = sweep_schedule()
    assert schedule["cron"] == "0 7 * * 1-5" and schedule["timezone"] == "Europe/London"
    assert schedule.get("active", True)
    scheduling_server.register_deployments()

    with temporary_settings({PREFECT_API_URL: scheduling_server.api_url}):
        scheduled = await eventually(lambda: scheduled_or_failed(scheduling_server), timeout=120,
                                     what="the scheduler to create the sweep's runs")

    times = sorted(run.expected_start_time.astimezone(LONDON) for run in scheduled)
    assert times[0] > datetime.now(UTC)
    for when in times:
        assert (when.hour, when.minute) == (7, 0)
        assert when.weekday() < 5
    # The cron is Mon-Fri; the flow itself skips bank holidays, so a scheduled run may fall on
    # one. Across the runs scheduled (Prefect schedules days ahead), most are working days.
    assert any(england_and_wales().is_working_day(when.date()) for when in times)
    assert server_failures(scheduling_server) == []


async def test_a_scheduled_sweep_run_is_created_by_the_server_and_completed_by_a_worker(
        scheduling_server: PrefectServer, tmp_path: Path) -> None:
    """A schedule seconds away: the scheduler creates the run, the worker completes it.

    The run sweeps as of a Monday in 2000, when no case of this session's DB is due."""
    scheduling_server.register_deployments()
    with temporary_settings({PREFECT_API_URL: scheduling_server.api_url}):
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("rprp-sweep/rprp-sweep")
            await client.update_deployment(
                deployment.id, DeploymentUpdate(parameters={"as_of": "2000-01-03T07:00:00+00:00"}))
            await client.create_deployment_schedules(deployment.id, [(
                # Every minute: should the scheduler first look after the anchor has passed (a
                # loaded machine), the next run is still at most a minute away.
                IntervalSchedule(interval=timedelta(minutes=1),
                                 anchor_date=datetime.now(UTC) + timedelta(seconds=5)),
                True,
            )])

        worker = Worker(env=worker_env(scheduling_server.api_url),
                        log_path=tmp_path / "worker.log")
        worker.start()
        try:
            completed = await eventually(lambda: sweep_runs([StateType.COMPLETED]), timeout=180,
                                         what="a scheduled sweep run to complete")
        finally:
            worker.stop()

    assert completed[0].auto_scheduled
    assert completed[0].parameters == {"as_of": "2000-01-03T07:00:00+00:00"}
    assert server_failures(scheduling_server) == []

