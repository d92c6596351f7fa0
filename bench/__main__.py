"""`python -m bench`: the benchmark harness (see bench/cli.py, or `python -m bench --help`)."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m bench"))
