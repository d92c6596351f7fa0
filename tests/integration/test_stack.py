"""`rprp up` for real: every part starts on loopback, the deployments are registered, and Ctrl-C
stops everything it started, freeing every port. Prefect's database and the case DB are on
PostgreSQL when RPRP_TEST_DATABASE_URL is set, as a force would run them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rprp.processes import descendants, free_port, port_is_free
from tests.support.database import create_test_database, drop_test_database
from tests.support.stack import log_failures

pytestmark = [pytest.mark.long(seconds=80)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = {"rprp-case", "rprp-sweep", "rprp-action-review", "rprp-rpm",
               "rprp-learning-board"}
START_TIMEOUT = 300
STOP_TIMEOUT = 30
DEMO_TIMEOUT = 600
DEFAULT_PSD = ("psd@force.example", "demo-psd-password")  # the demo PSD sign-in rprp up prints


@pytest.fixture
def databases() -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases for the stack when the tests have a server; else SQLite."""
    base = os.environ.get("RPRP_TEST_DATABASE_URL", "")
    if not base:
        yield {}
        return
    suffix = uuid.uuid4().hex[:10]
    cases = create_test_database(base, f"rprp_stack_cases_{suffix}")
    prefect = create_test_database(base, f"rprp_stack_prefect_{suffix}")
    # Plain postgresql:// URLs, as an operator would write them; rprp picks the drivers.
    yield {"RPRP_DATABASE_URL": cases.replace("+psycopg", ""),
           "RPRP_PREFECT_DATABASE_URL": prefect.replace("+psycopg", "")}
    drop_test_database(base, cases)
    drop_test_database(base, prefect)


def stack_env(data_dir: Path, smtp_port: int, databases: dict[str, str]) -> dict[str, str]:
    """This environment without the test session's RPRP_/PREFECT_ settings: a clean operator."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RPRP_", "PREFECT_"))}
    env.update({"RPRP_DATA_DIR": str(data_dir), "RPRP_SMTP_PORT": str(smtp_port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", **databases})
    return env


def diagnostics(out: Path, data_dir: Path) -> str:
    parts = [f"--- rprp up output\n{out.read_text(errors='replace')[-4000:]}"]
    for log in sorted((data_dir / "logs").glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}")
    return "\n".join(parts)


def ready(prefect: str, portal: str) -> bool:
    try:
        return (httpx.get(f"{prefect}/api/health", timeout=2).status_code == 200
                and httpx.get(f"{portal}/healthz", timeout=2).status_code == 200)
    except httpx.HTTPError:
        return False


def start_up(ports: tuple[int, int], env: dict[str, str], out: Path,
             data_dir: Path) -> subprocess.Popen:
    """`rprp up` as an operator runs it, in its own process group; returns once it is ready."""
    prefect_port, portal_port = ports
    with out.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "rprp.cli", "up", "--prefect-port", str(prefect_port),
             "--portal-port", str(portal_port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while "RPRP is running" not in out.read_text(errors="replace"):
        assert process.poll() is None, f"rprp up exited early\n{diagnostics(out, data_dir)}"
        assert time.monotonic() < deadline, \
            f"rprp up not ready in {START_TIMEOUT}s\n{diagnostics(out, data_dir)}"
        time.sleep(1)
    return process


def ctrl_c(process: subprocess.Popen, out: Path, data_dir: Path) -> list[tuple[int, str]]:
    """Ctrl-C, as a person at the terminal; returns the children that were running before."""
    children = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rprp up did not stop in {STOP_TIMEOUT}s\n{diagnostics(out, data_dir)}")
    assert code == 0, diagnostics(out, data_dir)
    still_running = [pid for pid, started in children if _same_process(pid, started)]
    assert still_running == [], f"left running: {still_running}"
    return children


def kill_if_running(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)  # our own child, only if the test failed
        process.wait(timeout=10)


DEMO_PATHS = {  # rprp demo's paths, and where each leaves its case waiting for a person
    "account given": "fact_finding_decision",
    "account missed": "fact_finding_decision",
    "referral back": "referred_back_to_aa",
    "non-engagement": "non_engagement_review",
}
DEMO_LINE = re.compile(r"^(RPRP-(\d{6}))\s+(.+?)\s+now (\S+)$", re.M)


def rprp(env: dict[str, str], *args: str, timeout: float = DEMO_TIMEOUT
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rprp.cli", *args], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


def prefect_auth(data_dir: Path) -> tuple[str, str]:
    """The Prefect server's credentials `rprp up` generated (user:password as basic auth)."""
    key = data_dir / "prefect-api-auth.key"
    assert key.stat().st_mode & 0o777 == 0o600
    user, _, password = key.read_text().strip().partition(":")
    return user, password


def run_demo(env: dict[str, str], prefect: str, portal_port: int) -> dict[int, str]:
    """`rprp demo` in a second terminal, told nothing about the stack's ports or credentials (it
    finds them in the data dir); returns {case id: state} as it printed them."""
    gateway = f"http://127.0.0.1:{portal_port}/prefect"
    done = subprocess.run([sys.executable, "-m", "rprp.cli", "demo"], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=DEMO_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    found = {m.group(3): (int(m.group(2)), m.group(4)) for m in DEMO_LINE.finditer(done.stdout)}
    assert {path: state for path, (_, state) in found.items()} == DEMO_PATHS, done.stdout
    for case_id, _ in found.values():
        assert f"http://127.0.0.1:{portal_port}/cases/{case_id}" in done.stdout
    # One Prefect link per case, and one for the reflective practice meeting at the CRC's step.
    assert done.stdout.count(f"{gateway}/runs/flow-run/") == len(DEMO_PATHS) + 1, done.stdout
    assert re.search(r"RPM-\d+ +reflective practice meeting, now sent_to_business_unit",
                     done.stdout), done.stdout
    assert "Demo sign-ins" in done.stdout and all(part in done.stdout for part in DEFAULT_PSD)
    return dict(found.values())


def seen_in_both(prefect: str, portal: str, cases: dict[int, str], auth: tuple[str, str]) -> None:
    """Each case is on the portal in its state, and its Prefect flow run is paused for it."""
    for case_id, state in cases.items():
        page = httpx.get(f"{portal}/api/referrals/{case_id}", auth=DEFAULT_PSD, timeout=10)
        assert page.status_code == 200, page.text
        assert page.json()["state"] == state
        run_id = page.json()["flow_run_id"]
        run = httpx.get(f"{prefect}/api/flow_runs/{run_id}", auth=auth, timeout=10).json()
        assert run["state"]["type"] == "PAUSED", (case_id, run["state"])
        link = page.json()["pending_decision"]["prefect_url"]
        assert link == f"{portal}/prefect/runs/flow-run/{run_id}"  # through the gateway


@pytest.mark.integration
def test_rprp_up_starts_everything_and_ctrl_c_stops_it(tmp_path: Path,
                                                       databases: dict[str, str]) -> None:
    prefect_port, portal_port, smtp_port = free_port(), free_port(), free_port()
    prefect, portal = f"http://127.0.0.1:{prefect_port}", f"http://127.0.0.1:{portal_port}"
    data_dir, out = tmp_path / "data", tmp_path / "up.out"
    env = stack_env(data_dir, smtp_port, databases)
    process: subprocess.Popen | None = None
    try:
        process = start_up((prefect_port, portal_port), env, out, data_dir)
        assert ready(prefect, portal), diagnostics(out, data_dir)

        # Prefect answers only with its credentials; its UI is served under /prefect and
        # pointed at the portal's gateway, which signed-out people cannot pass.
        auth = prefect_auth(data_dir)
        assert httpx.get(f"{prefect}/api/work_pools/rprp-pool", timeout=10).status_code == 401
        ui_settings = httpx.get(f"{prefect}/prefect/ui-settings", timeout=10).json()
        assert ui_settings["api_url"] == f"{portal}/prefect/api"
        assert httpx.get(f"{portal}/prefect/api/flow_runs/filter", timeout=10).status_code == 401
        assert httpx.get(f"{portal}/prefect/", timeout=10).status_code == 303  # to sign in

        # The pool, the three deployments on it, and the sweep's working-day schedule.
        pool = httpx.get(f"{prefect}/api/work_pools/rprp-pool", auth=auth, timeout=10).json()
        assert pool["type"] == "process"
        assert pool["status"] == "READY", "the worker should have reported in"
        found = httpx.post(f"{prefect}/api/deployments/filter", json={}, auth=auth,
                           timeout=10).json()
        assert {d["name"] for d in found} == DEPLOYMENTS
        assert {d["work_pool_name"] for d in found} == {"rprp-pool"}
        sweep = next(d for d in found if d["name"] == "rprp-sweep")
        schedule = sweep["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("0 7 * * 1-5", "Europe/London")
        board = next(d for d in found if d["name"] == "rprp-learning-board")
        schedule = board["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"], schedule["day_or"]) == (
            "30 7 1-7 * 1-5", "Europe/London", False)  # weekdays of days 1-7, not either

        # The outbox page is there (behind the portal's sign-in), and the SMTP sink listens.
        outbox = httpx.get(f"{portal}/outbox", timeout=10)
        assert outbox.status_code in (200, 303), outbox.status_code
        assert not port_is_free(smtp_port)
        output_text = out.read_text()
        for where in (prefect, f"{portal}/prefect/", f"{portal}/outbox",
                      f"127.0.0.1:{smtp_port}", str(data_dir)):
            assert where in output_text

        # `rprp demo` against it: four cases, each in the portal and paused in Prefect.
        cases = run_demo(env, prefect, portal_port)
        printed = out.read_text(encoding="utf-8")  # rprp up's banner, long since printed
        assert "Demo sign-ins" in printed and all(part in printed for part in DEFAULT_PSD), printed
        seen_in_both(prefect, portal, cases, auth)
        # `rprp sweep` finds the running stack (and its Prefect credentials) by itself too.
        swept = rprp(env, "sweep")
        assert swept.returncode == 0, swept.stdout + swept.stderr
        assert isinstance(json.loads(swept.stdout), dict), swept.stdout

        children = ctrl_c(process, out, data_dir)
        assert not (data_dir / "stack.json").exists(), "a stopped stack leaves no state file"
        # With no stack and no PREFECT_API_URL: one line saying what to set, not a traceback.
        refused = rprp(env, "sweep", timeout=120)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.count("\n") == 1 and "PREFECT_API_URL" in refused.stderr, (
            refused.stderr)
        assert len(children) >= 3, "server, worker and portal run as children"
        for port in (prefect_port, portal_port, smtp_port):
            assert port_is_free(port), f"port {port} still in use after Ctrl-C"

        # The next `rprp up` finds the same cases, each still waiting for its person.
        process = start_up((prefect_port, portal_port), env, tmp_path / "up-again.out",
                           data_dir)
        seen_in_both(prefect, portal, cases, auth)
        ctrl_c(process, tmp_path / "up-again.out", data_dir)
        for log in sorted((data_dir / "logs").glob("*.log")):
            assert log_failures(log) == [], f"{log.name} logged failures no test saw"
    finally:
        kill_if_running(process)


def _same_process(pid: int, started: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] == started and fields[0] != "Z"
