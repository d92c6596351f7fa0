"""`rprp deadline --served <ISO datetime> --working-days N`: the deadline date, last line."""

from __future__ import annotations

import argparse
import sys
from datetime import date

from tasks.calendar import (
    LONDON,
    england_and_wales,
    parse_extra_holidays,
    parse_instant,
    service_day,
    working_day_deadline,
)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rprp deadline",
        description="End of the Nth working day (England and Wales) after the day of service.")
    parser.add_argument("--served", required=True,
                        help="when notice was served, ISO 8601; no offset means Europe/London")
    parser.add_argument("--working-days", type=int, default=5)
    parser.add_argument("--extra-holiday", action="append", default=[],
                        help="an extra non-working day, YYYY-MM-DD (repeatable)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        served = parse_instant(args.served)
        extras: set[date] | None = None
        if args.extra_holiday:
            extras = set(parse_extra_holidays(",".join(args.extra_holiday)))
        calendar = england_and_wales(extras)
        deadline = working_day_deadline(served, args.working_days, calendar)
    except ValueError as exc:
        print(f"rprp deadline: {exc}", file=sys.stderr)
        return 2
    local = deadline.astimezone(LONDON)
    print(f"served (Europe/London): {served.astimezone(LONDON):%Y-%m-%d %H:%M %Z}, "
          f"day of service {service_day(served)}")
    print(f"calendar: {calendar.version}")
    print(f"deadline: {local:%A %d %B %Y %H:%M:%S %Z} ({deadline:%Y-%m-%dT%H:%M:%SZ})")
    print(local.date().isoformat())
    return 0
