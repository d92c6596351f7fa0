"""`rprp foi --from DATE --to DATE --out FILE`: the FOI return of each officer-case given RPRP.

Prints the counts the answer gives. Summaries that still identify someone are left out of the
file and listed for PSD to fix; the command then exits 3, so the return is not sent as it is.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

PROG = "rprp foi"
HELD_BACK_EXIT = 3


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The FOI return: one row per "
                                     "officer-case given RPRP, referred in the period.")
    parser.add_argument("--from", dest="period_from", type=_day, required=True,
                        help="first day of the period (referred on or after)")
    parser.add_argument("--to", dest="period_to", type=_day, required=True,
                        help="last day of the period (referred on or before)")
    parser.add_argument("--out", type=Path, required=True, help="FILE.csv or FILE.xlsx")
    parser.add_argument("--as-of", type=_day, default=None,
                        help="the day 'still serving' is answered for (default: today)")
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.out.suffix.lower() not in {".csv", ".xlsx"}:
        print(f"{PROG}: --out must end in .csv or .xlsx", file=sys.stderr)
        return 2
    if args.period_to < args.period_from:
        print(f"{PROG}: --to is before --from", file=sys.stderr)
        return 2

    from infra.db import create_schema, session_scope
    from models import utc_now
    from tasks.calendar import LONDON
    from tasks.foi import foi_return, write

    create_schema()
    as_of = args.as_of or utc_now().astimezone(LONDON).date()
    with session_scope() as session:
        foi = foi_return(session, args.period_from, args.period_to, as_of)
    written = write(foi, args.out)
    for what, value in foi.summary():
        print(f"{what:<32} {value}")
    print("Written: " + ", ".join(str(p) for p in written))
    if foi.held_back:
        print(f"{PROG}: {len(foi.held_back)} summary(ies) still identify someone and were held "
              "back; fix each case's public summary, then run again:", file=sys.stderr)
        for held in foi.held_back:
            print(f"  {held.reference}: {', '.join(held.found)}", file=sys.stderr)
        return HELD_BACK_EXIT
    return 0
