"""`rprp chaos`: cases through their lives on the loopback cluster while parts of it fail
(bench/chaos.py), then the account: lost steps, duplicate emails and decisions, runs left behind,
recovery time per fault, cases per minute with one and two workers.

    rprp chaos                          # 200 cases, results in bench/results/<date>-chaos.*
    rprp chaos --cases 20 --throughput-cases 10 --out /tmp/chaos
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    from bench.chaos import CHAOS_ENV  # the cluster's settings: their defaults are its

    stalled_minutes = float(CHAOS_ENV["RPRP_STALLED_RUN_MINUTES"])
    retry_seconds = float(CHAOS_ENV["RPRP_SMTP_RETRY_SECONDS"])
    parser = argparse.ArgumentParser(prog="rprp chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=200,
                        help="cases driven through their lives while the faults happen "
                             "(default 200)")
    parser.add_argument("--throughput-cases", type=int, default=40,
                        help="cases for each fault-free throughput batch, with 1 and with 2 "
                             "workers (default 40; 0 skips them)")
    parser.add_argument("--outage-seconds", type=float, default=15.0,
                        help="how long the API replica and the SMTP server stay down (default 15)")
    parser.add_argument("--settle-seconds", type=float, default=10.0,
                        help="pause between one fault's recovery and the next (default 10)")
    parser.add_argument("--sweep-seconds", type=float, default=15.0,
                        help="how often the deadline sweep runs, compressed (default 15)")
    parser.add_argument("--stalled-run-minutes", type=float, default=stalled_minutes,
                        help="RPRP_STALLED_RUN_MINUTES for the cluster: how long a run stands "
                             f"Running before the sweep reschedules it (default {stalled_minutes:g})")
    parser.add_argument("--mail-retry-seconds", type=float, default=retry_seconds,
                        help="RPRP_SMTP_RETRY_SECONDS for the cluster: the first wait before an "
                             f"email that failed is tried again (default {retry_seconds:g})")
    parser.add_argument("--postgres", default="",
                        help="a PostgreSQL server URL for the cluster's databases, shared, so "
                             "not restarted (default: a server of its own, from initdb, which "
                             "the suite restarts; without PostgreSQL's binaries, "
                             "RPRP_CLUSTER_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="where <date>-chaos.json and .md go (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.throughput_cases < 0:
        parser.error("--cases must be at least 1 and --throughput-cases at least 0")
    if min(args.sweep_seconds, args.stalled_run_minutes, args.mail_retry_seconds) <= 0:
        parser.error("--sweep-seconds, --stalled-run-minutes and --mail-retry-seconds must be "
                     "more than 0")

    from bench.chaos import run as run_chaos
    from bench.chaos import write
    from bench.machine import facts

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the cluster is stopped on the way out

    signal.signal(signal.SIGTERM, interrupted)
    machine = facts()  # at the start: the commit and the load the run began with
    with tempfile.TemporaryDirectory(prefix="rprp-chaos-") as workdir:
        report = asyncio.run(run_chaos(
            args.cases, args.throughput_cases, Path(workdir),
            lambda line: print(line, flush=True), outage_seconds=args.outage_seconds,
            settle_seconds=args.settle_seconds, sweep_seconds=args.sweep_seconds,
            postgres_url=args.postgres,
            env={"RPRP_STALLED_RUN_MINUTES": f"{args.stalled_run_minutes:g}",
                 "RPRP_SMTP_RETRY_SECONDS": f"{args.mail_retry_seconds:g}"}))
    command = shlex.join(["rprp", "chaos", *argv])
    json_path, md_path = write(report, args.out, command, machine)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}")
    bad = {key: report.get(key) for key in ("lost_steps", "duplicate_emails",
                                            "duplicate_decisions", "duplicate_audit_events",
                                            "undelivered_emails", "crashed_runs",
                                            "running_without_process")
           if report.get(key)}
    if bad or report.get("completed") != report.get("cases"):
        print("rprp chaos: not everything survived: " + json.dumps(bad), file=sys.stderr)
        return 1
    return 0
