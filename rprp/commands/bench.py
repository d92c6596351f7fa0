"""`rprp bench`: run the benchmark harness (bench/); `rprp bench --help` lists its options."""

from __future__ import annotations


def run(argv: list[str]) -> int:
    from bench.cli import main

    return main(argv, prog="rprp bench")
