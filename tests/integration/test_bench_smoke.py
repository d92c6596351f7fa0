"""The benchmark harness at tiny sizes, so it cannot rot: `python -m bench` starts its own stack,
measures every figure, prints the table and writes the JSON and markdown results.

Figures are not judged here (a benchmark is not a test), but what the harness reports as facts
is: waiting cases hold no process, and a second sweep sends nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.long(seconds=100)]

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--cases-lifecycle", "1", "--lifecycle-repeats", "1", "--cases", "3",
        "--sweep-sizes", "20,40", "--wake-targets", "1", "--latency-samples", "2",
        "--intake-requests", "4", "--intake-clients", "2", "--repeats", "1", "--no-profile",
        "--no-warm-up",
        "--next-wait-cases", "1", "--next-wait-workers", "rprp",
        "--only", "lifecycle,nextwait,waiting,sweep,latency,intake"]


@pytest.mark.integration
def test_the_bench_harness_runs_every_figure_at_tiny_sizes(tmp_path: Path) -> None:
    db = os.environ.get("RPRP_TEST_DATABASE_URL", "") or "sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RPRP_"))}
    done = subprocess.run([sys.executable, "-m", "bench", "--db", db, "--out", str(tmp_path),
                           *TINY], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]

    label = "sqlite" if db == "sqlite" else "postgresql"
    [json_path] = tmp_path.glob(f"*-{label}.json")
    results = json.loads(json_path.read_text())
    figures = results["figures"]
    assert set(figures) == {"lifecycle", "nextwait", "waiting", "sweep", "latency", "intake"}
    assert not [name for name, fig in figures.items() if "error" in fig]
    assert results["machine"]["cores"] >= 1 and results["machine"]["memory_gb"] > 0
    speed = results["machine"]["speed"]  # to compare one machine's figures with another's
    assert speed["python_loop_seconds"] > 0 and speed["prefect_engine_import_seconds"] > 0

    assert figures["lifecycle"]["failures"] == 0
    assert figures["waiting"]["flow_processes_while_waiting"] == 0
    for size in figures["sweep"]["by_size"].values():
        assert size["checks_passed"], size
        assert size["emails_sent"] > 0 and size["emails_sent_second_run"] == 0
    assert figures["latency"]["measured"] == 2
    # Figure 8 through the product's worker (Prefect's stock worker takes 15 s a step, so the
    # side-by-side run is left to the bench itself).
    kinds = figures["nextwait"]["by_worker"]["rprp"]
    assert kinds["decision -> next wait (Resume in Prefect's UI)"]["n"] == 3
    assert not figures["nextwait"]["errors"]
    assert figures["intake"]["requests"] == 4 and figures["intake"]["failed_requests"] == 0
    modes = figures["intake"]["modes"]
    assert set(modes) == {"sync, 1 client", "sync, 2 clients", "async, 1 client",
                          "async, 2 clients"}
    assert modes["async, 2 clients"]["statuses"] == {"202": 4}
    # ... and the portal started every one of those cases' runs on the real Prefect server after.
    assert modes["async, 2 clients"]["runs_started"] == 4
    assert modes["async, 1 client"]["runs_started"] == 4

    summary = json_path.with_suffix(".md").read_text()
    assert "## Machine" in summary and "## 1. Lifecycle overhead" in summary
    assert "Speed, to compare machines" in summary
    assert results["meta"]["sizes"]["warm_up"] is False and "with no warm-up" in summary
    assert "## 8. Answer -> next wait" in summary
    assert "ratio case / bare" in done.stdout, "the table is printed"
