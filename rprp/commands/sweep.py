"""`rprp sweep [--as-of ISO]`: run the deadline sweep once, now or at a simulated instant.

Prints the sweep's summary; a duty that failed is listed on stderr and the exit status is 1 (the
other duties still did their work). Warnings (email given up) are listed but exit 0.
"""

from __future__ import annotations

from rprp.running import use_running_stack

# Find a running `rprp up` before Prefect reads its settings; PREFECT_API_URL wins.
use_running_stack()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from prefect.settings import PREFECT_API_URL  # noqa: E402

from flows.sweep import SweepFailed, rprp_sweep  # noqa: E402
from rprp.running import prefect_problem  # noqa: E402
from tasks.calendar import parse_instant  # noqa: E402


def _lines(summary: dict[str, object], key: str) -> list[str]:
    value = summary.get(key)
    return [str(line) for line in value] if isinstance(value, list) else []


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rprp sweep", description=__doc__)
    parser.add_argument("--as-of", help="ISO 8601 instant; no offset means Europe/London")
    args = parser.parse_args(argv)
    try:
        as_of = parse_instant(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"rprp sweep: {exc}", file=sys.stderr)
        return 2
    problem = prefect_problem("rprp sweep", PREFECT_API_URL.value())
    if problem:
        print(problem, file=sys.stderr)
        return 1
    failed: SweepFailed | None = None
    try:
        summary = asyncio.run(rprp_sweep(as_of=as_of))
    except SweepFailed as exc:
        summary, failed = exc.summary, exc
    print(json.dumps(summary, indent=2, default=str))
    for warning in _lines(summary, "warnings"):
        print(f"rprp sweep: warning: {warning}", file=sys.stderr)
    if failed is not None:
        for error in _lines(summary, "errors"):
            print(f"rprp sweep: error: {error}", file=sys.stderr)
        print(f"rprp sweep: {failed}", file=sys.stderr)
        return 1
    return 0
