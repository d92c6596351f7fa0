"""Figure 6, the test suite's clock: the two tests that run a case's whole life by moving time,
run with pytest as a subprocess and timed with pytest's own duration lines.

`clock`: the case driven through the steps its flow runs call (the 5-working-day wait and a
3-month action review), with the real sweep, Prefect server and SMTP server (no flow process
starts). `orchestrated`: a whole life through real flow runs on a real worker (the 3-month review
reached by moving the sweep), where every resume starts a flow process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.stats import summary

ROOT = Path(__file__).resolve().parent.parent
TESTS = {
    "clock": "tests/integration/test_case_clock.py::"
             "test_a_case_lives_its_whole_life_in_seconds_by_moving_the_sweep",
    "orchestrated": "tests/integration/test_case_lifecycle.py::"
                    "test_happy_path_from_notice_to_closure",
}
DURATION = re.compile(r"^\s*([\d.]+)s (call|setup|teardown)\s+(\S+)", re.M)
TIMEOUT = 900


def _env(database_url: str, workdir: Path) -> dict[str, str]:
    """The developer's environment without anything the bench pointed at its own stack."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "RPRP_", "PYTEST_"))}
    env["DO_NOT_TRACK"] = "1"
    env["PREFECT_HOME"] = str(workdir / "prefect-suite")
    if database_url:
        env["RPRP_TEST_DATABASE_URL"] = database_url
    return env


def one(database_url: str, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", *TESTS.values(), "--durations=0",
               "--durations-min=0", "-q", "-p", "no:cacheprovider", "-m", "integration",
               f"--basetemp={workdir / 'pytest-suite'}"]
    t0 = time.perf_counter()
    done = _run_pytest(command, _env(database_url, workdir))
    wall = time.perf_counter() - t0
    phases = {name: {m.group(2): float(m.group(1)) for m in DURATION.finditer(done.stdout)
                     if m.group(3) == test} for name, test in TESTS.items()}
    return {"passed": done.returncode == 0, "wall_seconds": round(wall, 2), "phases": phases,
            "tail": "" if done.returncode == 0 else (done.stdout + done.stderr)[-3000:]}


def _run_pytest(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """pytest, stopped with SIGINT if the bench is interrupted or times out, so its fixtures stop
    the Prefect server they started (a SIGKILL would leave that server running)."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except BaseException:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def run(database_url: str, workdir: Path, repeats: int, log: Any) -> dict[str, Any]:
    runs = []
    for r in range(repeats):
        log(f"suite: repeat {r + 1}/{repeats}: pytest, the two whole-life tests ...")
        result = one(database_url, workdir)
        calls = {name: p.get("call", "?") for name, p in result["phases"].items()}
        log(f"  {result['wall_seconds']:.1f} s wall, calls {calls}")
        runs.append(result)

    def calls(name: str) -> list[float]:
        return [r["phases"][name]["call"] for r in runs if "call" in r["phases"][name]]

    out: dict[str, Any] = {
        "tests": TESTS,
        "database": "PostgreSQL (RPRP_TEST_DATABASE_URL)" if database_url else "SQLite",
        "repeats": repeats,
        "wall": summary([r["wall_seconds"] for r in runs]),
        "call": {name: summary(calls(name)) for name in TESTS},
        "setup": summary([r["phases"]["clock"].get("setup", 0.0) for r in runs]),
        "passed": all(r["passed"] for r in runs),
        "failures": [r["tail"] for r in runs if not r["passed"]][:1],
        "target": "< 5 s (the clock test's call)",
    }
    out["met"] = bool(calls("clock")) and out["call"]["clock"]["median"] < 5.0 and out["passed"]
    return out
