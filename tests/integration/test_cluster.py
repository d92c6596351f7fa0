"""The force-shaped installation on loopback (rprp.cluster) for real: `rprp up --cluster` starts
PostgreSQL databases, Redis, two Prefect API replicas behind HAProxy, Prefect's services, two
workers and the portal, serves a sweep through the balancer and stops everything it started;
`rprp chaos` at a small size drives cases through their lives while each fault happens, and
nothing is lost or done twice."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rprp.cluster import (
    database_url,
    drop_database,
    haproxy_binary,
    postgres_binaries,
    redis_answers,
)
from rprp.processes import descendants, free_port, port_is_free

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 300

pytestmark = [
    pytest.mark.long(seconds=290),
    pytest.mark.skipif(not os.environ.get("RPRP_TEST_DATABASE_URL"),
                       reason="the cluster runs on PostgreSQL: set RPRP_TEST_DATABASE_URL"),
    pytest.mark.skipif(haproxy_binary() is None, reason="HAProxy is not installed (./dev test "
                                                        "installs it as root)"),
]


def server_url() -> str:
    return os.environ["RPRP_TEST_DATABASE_URL"]


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """An operator's environment: none of the test session's RPRP_/PREFECT_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RPRP_", "PREFECT_"))}
    env.update({"RPRP_DATA_DIR": str(data_dir), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "DO_NOT_TRACK": "1", "RPRP_CLUSTER_POSTGRES_URL": server_url(), **extra})
    return env


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"rprp_cltest_{uuid.uuid4().hex[:8]}"
    yield name
    for suffix in ("_prefect", "_cases"):
        drop_database(server_url(), name + suffix)


def test_cluster_up_serves_through_the_balancer_and_stops_everything(
        tmp_path: Path, prefix: str) -> None:
    if not redis_answers("redis://127.0.0.1:6379"):
        from shutil import which

        if which("redis-server") is None:
            pytest.skip("no Redis and no redis-server")
    prefect_port, portal_port = free_port(), free_port()
    env = clean_env(tmp_path / "data", RPRP_CLUSTER_DATABASE_PREFIX=prefix)
    out = tmp_path / "up.out"
    with out.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "rprp.cli", "up", "--cluster", "--prefect-port",
             str(prefect_port), "--portal-port", str(portal_port)],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "The RPRP cluster is running" not in out.read_text(errors="replace"):
            assert process.poll() is None, out.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, out.read_text(errors="replace")[-4000:]
            time.sleep(0.5)
        text = out.read_text()
        replicas = [int(p) for p in re.search(r"replicas on ports ([\d, ]+)\)", text)
                    .group(1).split(", ")]
        assert len(replicas) == 2
        key = (tmp_path / "data" / "cluster" / "prefect-api-auth.key").read_text().strip()
        auth = tuple(key.split(":", 1))
        api = f"http://127.0.0.1:{prefect_port}/api"
        # Both replicas answer on their own, and the balancer in front of them.
        for port in replicas:
            assert httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200
        assert httpx.get(f"{api}/health", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{portal_port}/healthz", timeout=5).status_code == 200
        # The API asks for the credentials through the balancer too.
        assert httpx.post(f"{api}/deployments/filter", json={}, timeout=5).status_code == 401
        names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={},
                                               auth=auth, timeout=10).json()}
        assert {"rprp-case", "rprp-sweep"} <= names
        # Two workers poll the pool through the balancer.
        workers = httpx.post(f"{api}/work_pools/rprp-pool/workers/filter", json={},
                             auth=auth, timeout=10).json()
        assert {w["name"] for w in workers} >= {"cluster-worker-1", "cluster-worker-2"}
        # A sweep from another process, as an operator's schedule runs it, through the balancer.
        sweep = subprocess.run(
            [sys.executable, "-m", "rprp.cli", "sweep"], cwd=ROOT, capture_output=True,
            text=True, timeout=180, env=clean_env(
                tmp_path / "data", PREFECT_API_URL=api, PREFECT_API_AUTH_STRING=key,
                RPRP_DATABASE_URL=database_url(server_url(), f"{prefix}_cases", "psycopg")))
        assert sweep.returncode == 0, sweep.stderr[-3000:]
        assert json.loads(sweep.stdout)["errors"] == []
        family = descendants(process.pid)
        assert len(family) >= 8  # replicas, services, balancer, redis or not, workers, portal
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    assert process.returncode == 0, out.read_text(errors="replace")[-4000:]
    assert "Stopping the cluster" in out.read_text()
    for pid, _ in family:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"), \
            f"process {pid} outlived the cluster"
    for port in (prefect_port, portal_port, *replicas):
        assert port_is_free(port)


def test_chaos_at_a_small_size_loses_nothing_and_does_nothing_twice(tmp_path: Path) -> None:
    from shutil import which

    if which("redis-server") is None:
        pytest.skip("the chaos suite restarts a redis-server of its own: not installed")
    out = tmp_path / "results"
    own_servers = set(Path(tempfile.gettempdir()).glob("rprp-cluster-pg-*"))
    result = subprocess.run(
        [sys.executable, "-m", "rprp.cli", "chaos", "--cases", "6", "--throughput-cases", "1",
         "--outage-seconds", "6", "--settle-seconds", "3", "--sweep-seconds", "8",
         "--stalled-run-minutes", "0.5", "--mail-retry-seconds", "3", "--out", str(out)],
        cwd=ROOT, env=clean_env(tmp_path / "data"), capture_output=True, text=True,
        timeout=1500)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    [path] = list(out.glob("*-chaos.json"))
    report = json.loads(path.read_text())
    assert report["cases"] == report["completed"] == 6
    for key in ("lost_steps", "duplicate_emails", "duplicate_decisions",
                "duplicate_audit_events", "undelivered_emails", "crashed_runs",
                "running_without_process"):
        assert report[key] == 0, (key, report)
    assert report["emails_received"] == report["emails_in_outbox"] > 0
    faults = {f["fault"]: f for f in report["faults"]}
    # A PostgreSQL server of its own, restarted, wherever PostgreSQL's binaries are installed.
    restarts = {"restart-postgres"} if postgres_binaries() else set()
    assert set(faults) == {"kill-worker", "kill-replica", "stop-smtp", "sweeps",
                           "restart-redis", "end-case-db-connections", "end-all-db-connections",
                           *restarts}
    if restarts:
        assert "PostgreSQL stopped" in faults["restart-postgres"]["detail"]
        # Its own server's cluster directory went with it (another run's may come and go).
        assert not set(Path(tempfile.gettempdir()).glob("rprp-cluster-pg-*")) - own_servers
    # The faults bit: the killed worker held runs mid-step, and a delivery failed meanwhile.
    assert faults["kill-worker"]["affected"] > 0, faults["kill-worker"]
    assert faults["stop-smtp"]["affected"] > 0, faults["stop-smtp"]
    assert all(not f["errors"] for f in faults.values()), faults
    assert set(report["recovery_seconds"]) == set(faults)
    assert {"workers_1", "workers_2", "chaos_workers_2"} <= set(report["throughput"])
    assert (out / path.name.replace(".json", ".md")).exists()
