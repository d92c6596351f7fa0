"""`rprp sweep [--as-of ISO]`: run the deadline sweep once, now or at a simulated instant."""

from __future__ import annotations

import os

# Point at the local stack before Prefect reads its settings; an operator's profile wins.
os.environ.setdefault("PREFECT_API_URL", "http://127.0.0.1:4200/api")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from flows.sweep import rprp_sweep  # noqa: E402
from tasks.calendar import parse_instant  # noqa: E402


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rprp sweep", description=__doc__)
    parser.add_argument("--as-of", help="ISO 8601 instant; no offset means Europe/London")
    args = parser.parse_args(argv)
    try:
        as_of = parse_instant(args.as_of) if args.as_of else None
    except ValueError as exc:
        print(f"rprp sweep: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(rprp_sweep(as_of=as_of))
    print(json.dumps(summary, indent=2, default=str))
    return 0
