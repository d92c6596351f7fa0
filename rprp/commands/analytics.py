"""`rprp analytics disproportionality`: each group's rate and relative rate index at each stage
(seed 004), as JSON or CSV on standard output. Figures about groups only, never a case."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

PROG = "rprp analytics"


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    from tasks.disproportionality import CHARACTERISTICS

    parser = argparse.ArgumentParser(prog=PROG, description="Monitoring figures from the "
                                     "central record.")
    sub = parser.add_subparsers(dest="report", required=True)
    dp = sub.add_parser("disproportionality", help="rates and RRIs by group at each stage")
    dp.add_argument("--from", dest="period_from", type=_day, required=True,
                    help="first day of the period (referred on or after)")
    dp.add_argument("--to", dest="period_to", type=_day, required=True,
                    help="last day of the period (referred on or before)")
    dp.add_argument("--characteristic", choices=CHARACTERISTICS, required=True)
    dp.add_argument("--reference", default=None,
                    help="the reference group (default: White for ethnicity, else the largest)")
    dp.add_argument("--min-count", type=int, default=None,
                    help="suppress counts below this (default RPRP_DISPROPORTIONALITY_MIN_COUNT)")
    dp.add_argument("--format", choices=("json", "csv"), default="json")
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from infra.db import create_schema, session_scope
    from infra.settings import get_settings
    from tasks.disproportionality import disproportionality

    min_count = args.min_count if args.min_count is not None else (
        get_settings().disproportionality_min_count)
    if min_count < 1:
        print(f"{PROG}: --min-count must be at least 1", file=sys.stderr)
        return 2
    create_schema()
    try:
        with session_scope() as session:
            result = disproportionality(session, characteristic=args.characteristic,
                                        period_from=args.period_from,
                                        period_to=args.period_to, min_count=min_count,
                                        reference=args.reference)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.as_json(), indent=2))
    else:
        sys.stdout.write(result.as_csv())
    return 0
