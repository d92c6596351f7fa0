"""`rprp bench` / `python -m bench`: start what the figures need, measure, print a table, and
write bench/results/<date>-<db>.json and .md.

    rprp bench                                           # everything, SQLite, default sizes
    rprp bench --db postgresql://postgres@127.0.0.1:5432/test
    rprp bench --only sweep,intake --repeats 5 --out /tmp/bench

Benchmarks are not tests: CI does not run them (tests/integration/test_bench_smoke.py runs this
harness with tiny sizes so it cannot rot).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("lifecycle", "waiting", "sweep", "latency", "intake", "suite", "central",
           "nextwait")
STACK_FIGURES = {"lifecycle", "waiting", "sweep", "latency", "intake", "nextwait"}
# The order they run in: the suite first (it starts its own stack, so ours is not running yet),
# then the lifecycle on a fresh server, and the cases left waiting last but one.
RUN_ORDER = ("suite", "central", "lifecycle", "nextwait", "latency", "intake", "waiting",
             "sweep")


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default=",".join(FIGURES),
                   help="comma-separated figures to run, of: " + ",".join(FIGURES))
    p.add_argument("--db", default="sqlite",
                   help="sqlite (default), or a PostgreSQL URL whose server gets fresh databases "
                        "for the case DB and the Prefect DB (created and dropped here)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                   help="where <date>-<db>.json and .md go (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3,
                   help="repeats of the sweep, intake and suite figures (default 3)")
    p.add_argument("--lifecycle-repeats", type=int, default=2,
                   help="pairs of lifecycle batches, case and bare, order alternating (default 2)")
    p.add_argument("--cases-lifecycle", type=int, default=30,
                   help="cases per lifecycle batch (default 30)")
    p.add_argument("--cases", type=int, default=200,
                   help="cases left waiting for their accounts (default 200)")
    p.add_argument("--sweep-sizes", default="1000,10000",
                   help="open cases K to seed for the sweep, comma-separated (default 1000,10000)")
    p.add_argument("--wake-targets", type=int, default=5,
                   help="due cases given a real flow run for the sweep to resume (default 5)")
    p.add_argument("--latency-samples", type=int, default=20, help="default 20")
    p.add_argument("--next-wait-cases", type=int, default=5,
                   help="cases per worker, one at a time, for figure 8 (default 5)")
    p.add_argument("--next-wait-workers", default="rprp,stock",
                   help="workers figure 8 compares, of: rprp,stock (default both)")
    p.add_argument("--intake-requests", type=int, default=200,
                   help="referrals per intake repeat (default 200)")
    p.add_argument("--intake-clients", type=int, default=4, help="default 4")
    p.add_argument("--central-cases", type=int, default=100_000,
                   help="imported cases for the central record at force scale (default 100000)")
    p.add_argument("--poll-seconds", type=float, default=1.0,
                   help="the worker's PREFECT_WORKER_QUERY_SECONDS (default 1)")
    p.add_argument("--no-profile", action="store_true",
                   help="skip the profiles (flow processes under pyinstrument, the sweep, intake)")
    p.add_argument("--no-warm-up", action="store_true",
                   help="skip the uncounted first case of figures 1 and 8 (the smoke test's "
                        "choice; figures taken so include first imports and connections)")
    p.add_argument("--notes", type=Path, help="a markdown file to add to the summary as Notes")
    p.add_argument("--render", type=Path,
                   help="only re-write the .md beside this results JSON (with --notes)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    return p


def log(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", flush=True)


def _db_label(db: str) -> str:
    if db in ("", "sqlite"):
        return "sqlite"
    if db.startswith(("postgresql://", "postgres://", "postgresql+")):
        return "postgresql"
    raise SystemExit(f"--db: expected sqlite or a postgresql:// URL, not {db!r}")


def _base_url(db: str) -> str:
    if _db_label(db) == "sqlite":
        return ""
    return "postgresql://" + db.split("://", 1)[1]


def render_only(path: Path, notes: Path | None) -> int:
    import json

    from bench import report

    results = json.loads(path.read_text(encoding="utf-8"))
    if notes:
        results["notes"] = notes.read_text(encoding="utf-8")
        path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(report.markdown(results), encoding="utf-8")
    print(report.table(results))
    print(f"\nwrote {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m bench") -> int:
    args = parser(prog).parse_args(argv)
    if args.render:
        return render_only(args.render, args.notes)
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(only) - set(FIGURES)
    if unknown:
        print(f"{prog}: unknown figure(s) {sorted(unknown)}; choose from {','.join(FIGURES)}",
              file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.sweep_sizes.split(",") if x.strip()]
    label = _db_label(args.db)
    base_url = _base_url(args.db)

    workdir = Path(tempfile.mkdtemp(prefix="rprp-bench-"))
    # Before Prefect is imported: this process is a client of the bench's own server only.
    os.environ.update({"PREFECT_HOME": str(workdir / "prefect"), "DO_NOT_TRACK": "1",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_LOGGING_LEVEL": "WARNING"})
    from bench import report
    from bench.machine import facts, load_average

    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "meta": {
            "date": started.strftime("%Y-%m-%d"),
            "started": started.isoformat(timespec="seconds"),
            "database": label,
            "command": shlex.join([*prog.split(), *(sys.argv[1:] if argv is None else argv)]),
            "figures": [f for f in RUN_ORDER if f in only],
            "sizes": {"cases_lifecycle": args.cases_lifecycle,
                      "lifecycle_repeats": args.lifecycle_repeats, "cases_waiting": args.cases,
                      "sweep_sizes": sizes, "wake_targets": args.wake_targets,
                      "latency_samples": args.latency_samples,
                      "next_wait_cases": args.next_wait_cases,
                      "intake_requests": args.intake_requests,
                      "intake_clients": args.intake_clients, "repeats": args.repeats,
                      "worker_poll_seconds": args.poll_seconds, "worker_limit": 4,
                      "central_cases": args.central_cases, "warm_up": not args.no_warm_up},
        },
        "machine": facts(),
        "figures": {},
    }
    if args.notes:
        results["notes"] = args.notes.read_text(encoding="utf-8")
    t_start = time.monotonic()
    stack = None
    try:
        if "suite" in only:
            results["figures"]["suite"] = _guard(lambda: _suite(base_url, workdir, args))
        if "central" in only:
            results["figures"]["central"] = _guard(lambda: _central(base_url, workdir, args))
        if STACK_FIGURES & set(only):
            from bench.stack import BenchStack, Databases

            stack = BenchStack(workdir, Databases(workdir, base_url),
                               poll_seconds=args.poll_seconds)
            results["machine"]["database_server"] = stack.databases.server_version()
            log(f"starting the stack in {workdir} ({label}) ...")
            stack.start()
            log(f"Prefect server {stack.ui_url}, worker on rprp-pool (limit "
                f"{stack.worker_limit}, poll {args.poll_seconds:g} s), SMTP sink "
                f"127.0.0.1:{stack.smtp_port}")
            for name in RUN_ORDER:
                if name in only and name in STACK_FIGURES:
                    results["figures"][name] = _guard(lambda n=name: _figure(n, stack, args,
                                                                             sizes, results))
                    stack.check_alive()
        else:
            results["machine"]["database_server"] = "not used"
    except KeyboardInterrupt:
        log("interrupted: stopping what the bench started")
        results["meta"]["interrupted"] = True
    except Exception:  # noqa: BLE001 - the stack itself failed: still write what we have
        results["meta"]["error"] = traceback.format_exc()
        log(f"bench failed:\n{results['meta']['error']}")
    finally:
        if stack is not None:
            results["meta"]["server_log_errors"] = _count_errors(stack.log_dir)
            log("stopping the stack ...")
            stack.stop()
        results["machine"]["load_average_at_end"] = load_average()
        results["meta"]["seconds"] = round(time.monotonic() - t_start, 1)
        stem = f"{results['meta']['date']}-{label}"
        json_path, md_path = report.write(results, args.out, stem)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(report.table(results))
    print(f"\nwrote {json_path}\n      {md_path}")
    failed = [k for k, v in results["figures"].items() if "error" in v]
    return 1 if failed or "error" in results["meta"] else 0


def _guard(fn: Any) -> dict[str, Any]:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - one figure failing does not lose the others
        text = traceback.format_exc()
        log(f"figure failed:\n{text}")
        return {"error": text}


def _count_errors(log_dir: Path) -> dict[str, int]:
    counts = {}
    for path in sorted(log_dir.glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        counts[path.stem] = sum(1 for line in text.splitlines()
                                if "Traceback" in line or "| ERROR" in line)
    return counts


def _suite(base_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    from bench import suite

    return suite.run(base_url, workdir, args.repeats, log)


def _central(base_url: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The central record on a case DB of its own, dropped afterwards."""
    from bench import central
    from bench.stack import Databases

    databases = Databases(workdir, base_url)
    url = databases.case_db("central")
    try:
        return central.run(url, args.central_cases, args.repeats, log)
    finally:
        databases.forget_case_db(url)


def _figure(name: str, stack: Any, args: argparse.Namespace, sizes: list[int],
            results: dict[str, Any]) -> dict[str, Any]:
    if name == "lifecycle":
        from bench import lifecycle

        out = asyncio.run(lifecycle.run(stack, args.cases_lifecycle, args.lifecycle_repeats, log,
                                         warm_up=not args.no_warm_up))
        if not args.no_profile:
            results["profile"] = _guard(lambda: _profile_flows(stack))
        return out
    if name == "waiting":
        from bench import waiting

        return asyncio.run(waiting.run(stack, args.cases, log))
    if name == "sweep":
        from bench import sweep

        return asyncio.run(sweep.run(stack, sizes, args.repeats, args.wake_targets, log,
                                     profile=not args.no_profile))
    if name == "latency":
        from bench import latency

        return asyncio.run(latency.run(stack, args.latency_samples, log))
    if name == "nextwait":
        from bench import next_wait

        workers = tuple(w.strip() for w in args.next_wait_workers.split(",") if w.strip())
        return asyncio.run(next_wait.run(stack, args.next_wait_cases, log, workers,
                                         warm_up=not args.no_warm_up))
    if name == "intake":
        from bench import intake

        return asyncio.run(intake.run(stack, args.intake_requests, args.intake_clients,
                                      args.repeats, log, profile=not args.no_profile))
    raise ValueError(name)


def _profile_flows(stack: Any) -> dict[str, Any]:
    """One case and one bare lifecycle, alone, with every flow process under pyinstrument."""
    from bench import lifecycle, profiling
    from bench.watch import RunWatcher

    directory = stack.workdir / "profiles"
    directory.mkdir(exist_ok=True)
    log("profile: one case and one bare lifecycle with their flow processes under pyinstrument")

    async def go() -> None:
        await stack.register_bench_deployments(profile_dir=directory)
        try:
            async with RunWatcher(0.25) as watcher:
                for kind in ("case", "bare"):
                    result = await lifecycle.batch(kind, 1, watcher, stack.bare_dir)
                    if result["error_count"]:
                        raise RuntimeError(f"profiled {kind} lifecycle failed: {result['errors']}")
        finally:
            await stack.register_bench_deployments()

    asyncio.run(go())
    flows = profiling.analyse_profiles(directory)
    imports = [profiling.import_time(m) for m in ("flows.case_lifecycle", "bench.bare")]
    out = {"flow_processes": flows, "import_time": imports,
           "case_process_text": profiling.render_text(directory, "case")}
    out["summary"] = _dominates(out)
    return out


def _dominates(profile: dict[str, Any]) -> str:
    case = profile["flow_processes"].get("case")
    bare = profile["flow_processes"].get("bare")
    if not case or not bare:
        return ""
    phases = case["mean_phase_seconds"]
    top = sorted(phases.items(), key=lambda kv: -kv[1])
    own = case.get("mean_project_code_seconds", {}).get("project code (total)", 0.0)
    imports = {e["module"]: e["seconds"] for e in profile.get("import_time", [])}
    return (
        f"Every step of a case is a new flow process: the worker polls, starts `python -m "
        f"prefect.engine`, and the run replays from the top. A case-flow process took "
        f"{case['mean_process_seconds']:.2f} s ({case['mean_process_cpu_seconds']:.2f} s CPU) "
        f"against {bare['mean_process_seconds']:.2f} s for the bare flow; its largest parts were "
        + ", ".join(f"{k} ({v:.2f} s)" for k, v in top[:3])
        + f". The project's own work inside a run (case DB, email rendering, SMTP) was "
        f"{own:.2f} s. Importing the case flow's modules costs "
        f"{imports.get('flows.case_lifecycle', 0):.2f} s against "
        f"{imports.get('bench.bare', 0):.2f} s for the bare flow (both including Prefect's "
        f"engine), measured with `python -X importtime`.")
