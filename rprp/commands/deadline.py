"""`rprp deadline --served <ISO datetime> [--working-days N] [--extra-holiday DATE ...]`.

Prints how the deadline was reached (London day of service, calendar version, deadline instant in
London and UTC) and, as the last line, the deadline date YYYY-MM-DD so scripts can `tail -1` it.
Bad input gives one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from tasks.calendar import (
    LONDON,
    england_and_wales,
    parse_extra_holidays,
    parse_instant,
    service_day,
    working_day_deadline,
)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would print the usage block and exit; we want one line and exit code 2.
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rprp deadline",
        description="End of the Nth working day (England and Wales) after the day of service.")
    parser.add_argument("--served", required=True,
                        help="when notice was served, ISO 8601; no offset means Europe/London")
    parser.add_argument("--working-days", type=int, default=5,
                        help="working days after the day of service (default 5)")
    parser.add_argument("--extra-holiday", action="append", default=[], metavar="DATE",
                        help="an extra non-working day, YYYY-MM-DD (repeatable)")
    return parser


def run(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except _UsageError as exc:
        print(f"rprp deadline: {exc}", file=sys.stderr)
        return 2
    try:
        served = parse_instant(args.served)
        extras = parse_extra_holidays(",".join(args.extra_holiday)) if args.extra_holiday else None
        calendar = england_and_wales(extras)
        deadline = working_day_deadline(served, args.working_days, calendar)
    except ValueError as exc:
        print(f"rprp deadline: {exc}", file=sys.stderr)
        return 2
    local = deadline.astimezone(LONDON)
    print(f"served: {served.astimezone(LONDON):%a %d %b %Y %H:%M:%S %Z} (Europe/London); "
          f"day of service {service_day(served).isoformat()}")
    print(f"calendar: {calendar.version}")
    print(f"deadline: end of working day {args.working_days}: "
          f"{local:%a %d %b %Y %H:%M:%S %Z} = {deadline:%Y-%m-%dT%H:%M:%SZ}")
    print(local.date().isoformat())
    return 0
