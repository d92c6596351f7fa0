"""`rprp import cases|workforce FILE.csv`: past cases and workforce headcounts into the record.

The whole file is checked first; if any row is wrong each problem is printed (row, field,
reason), nothing is stored and the command exits 1. Importing the same file again changes
nothing. After an import that stored something, the database's planner statistics are refreshed
(ANALYZE), so the reports plan for the record's new size at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "rprp import"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Load history from the force's "
                                     "previous system (CSV, UTF-8, a header row).")
    parser.add_argument("kind", choices=("cases", "workforce"),
                        help="past RPRP cases, or workforce headcounts by group")
    parser.add_argument("file", type=Path, help="the CSV file")
    return parser


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)

    from infra.db import create_schema, session_scope
    from tasks.history_import import (
        ImportRefused,
        import_cases,
        import_workforce,
        refresh_statistics,
    )

    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{PROG}: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    create_schema()
    load = import_cases if args.kind == "cases" else import_workforce
    try:
        with session_scope() as session:
            result = load(session, text)
    except ImportRefused as refused:
        for problem in refused.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{PROG}: {refused}", file=sys.stderr)
        return 1
    if result.added or result.updated:
        with session_scope() as session:
            refresh_statistics(session)
    noun = "case(s)" if args.kind == "cases" else "headcount(s)"
    line = f"Imported {result.added} {noun}; {result.unchanged} already held, unchanged"
    if result.updated:
        line += f"; {result.updated} corrected"
    print(line)
    return 0
