"""A backup taken mid-case, restored into a new installation, and the case finished from it:
`rprp up`, `rprp backup` and `rprp restore` as an operator runs them, the case driven from a
second terminal (tests/support/stack_case.py). PostgreSQL when the tests have it, else SQLite."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rprp.processes import free_port
from tests.integration.test_stack import (
    ROOT,
    ctrl_c,
    kill_if_running,
    rprp,
    stack_env,
    start_up,
)
from tests.support.database import create_test_database, drop_test_database
from tests.support.stack import log_failures

pytestmark = [pytest.mark.long(seconds=75), pytest.mark.integration]
DRIVE_TIMEOUT = 900


def drive(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "tests.support.stack_case", *args], cwd=ROOT,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=DRIVE_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def installation(tmp_path: Path, name: str, made: list[str]) -> dict[str, str]:
    """A data dir and, with PostgreSQL, two empty databases: a machine with nothing on it."""
    import os

    base = os.environ.get("RPRP_TEST_DATABASE_URL", "")
    env = stack_env(tmp_path / name, free_port(), {})
    env["RPRP_REPORT_QUALITY_CHECK"] = "never"  # PSD's check has its own tests
    if base:
        suffix = uuid.uuid4().hex[:8]
        cases = create_test_database(base, f"rprp_{name}_cases_{suffix}")
        prefect = create_test_database(base, f"rprp_{name}_prefect_{suffix}")
        made += [cases, prefect]
        env.update({"RPRP_DATABASE_URL": cases.replace("+psycopg", ""),
                    "RPRP_PREFECT_DATABASE_URL": prefect.replace("+psycopg", "")})
    return env


def test_a_backup_taken_mid_case_restores_elsewhere_and_the_case_finishes(tmp_path: Path) -> None:
    import os

    made: list[str] = []
    process: subprocess.Popen | None = None
    try:
        # The force's installation, with a case waiting for the reviewer's fact-finding decision.
        old = installation(tmp_path, "old", made)
        old_dir = Path(old["RPRP_DATA_DIR"])
        process = start_up((free_port(), free_port()), old, tmp_path / "old.out", old_dir)
        started = drive(old, "start")
        archive = tmp_path / "mid-case.tar.gz"
        taken = rprp(old, "backup", "--out", str(archive))  # while the stack runs
        assert taken.returncode == 0, taken.stdout + taken.stderr
        assert archive.stat().st_mode & 0o777 == 0o600
        ctrl_c(process, tmp_path / "old.out", old_dir)
        process = None

        # A new machine: the restore is refused while its stack runs, then puts everything back.
        new = installation(tmp_path, "new", made)
        new_dir = Path(new["RPRP_DATA_DIR"])
        checked = rprp(new, "restore", "--check", str(archive))
        assert checked.returncode == 0 and "whole" in checked.stdout, checked.stderr
        restored = rprp(new, "restore", str(archive))
        assert restored.returncode == 0, restored.stdout + restored.stderr
        again = rprp(new, "restore", str(archive))
        assert again.returncode == 1 and "already holds data" in again.stderr, again.stderr
        assert (new_dir / "secret.key").read_text() == (old_dir / "secret.key").read_text()

        process = start_up((free_port(), free_port()), new, tmp_path / "new.out", new_dir)
        refused = rprp(new, "restore", "--replace", str(archive))
        assert refused.returncode == 1 and "rprp up is running" in refused.stderr, refused.stderr
        done = drive(new, "finish", str(started["case_id"]))
        assert done["flow_run_id"] == started["flow_run_id"], "the same run, not a new one"
        assert done["link_opens"], "the officer's emailed link still opens: the key came back"
        assert (done["ending"], done["state"]) == ("Completed", "closed_complete")
        audit = done["audit"]
        assert isinstance(audit, list) and audit[:len(started["audit"])] == started["audit"]  # type: ignore[arg-type]
        for step in ("account_received", "report_filed", "all_actions_closed"):
            assert audit.count(step) == 1, (step, audit)
        ctrl_c(process, tmp_path / "new.out", new_dir)
        process = None
        for log in sorted((new_dir / "logs").glob("*.log")):
            assert log_failures(log) == [], f"{log.name} logged failures no test saw"
    finally:
        kill_if_running(process)
        base = os.environ.get("RPRP_TEST_DATABASE_URL", "")
        for url in made:
            drop_test_database(base, url)
