"""The table printed at the end of a run, and the JSON and markdown files it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.stats import fmt, fmt_summary


def _met(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: ""}[value]


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, measure, result, target, met) for every figure that ran."""
    out: list[tuple[str, str, str, str, str]] = []
    figures = results.get("figures", {})

    def add(fig: str, measure: str, value: str, target: str = "", met: bool | None = None) -> None:
        out.append((fig, measure, value, target, _met(met)))

    for name, fig in figures.items():
        if "error" in fig:
            add(name, "ERROR", fig["error"].strip().splitlines()[-1][:80])
    life = figures.get("lifecycle")
    if life and "error" not in life:
        n = life["cases"]
        add("1 lifecycle", f"{n} cases, whole life: wall", fmt_summary(life["case_wall"], "range"))
        add("1 lifecycle", f"{n} bare flows, same shape: wall",
            fmt_summary(life["bare_wall"], "range"))
        add("1 lifecycle", "ratio case / bare (per pair)", fmt_summary(life["ratio"], "range"),
            "<= 1.3", life["met"])
        add("1 lifecycle", "one case's life (case | bare)",
            f"{fmt_summary(life['case_per_case'])} | {fmt(life['bare_per_case']['median'])}")
        if life["failures"]:
            add("1 lifecycle", "failed lifecycles", str(life["failures"]), "0", False)
    wait = figures.get("waiting")
    if wait and "error" not in wait:
        mem = wait["memory_mb"]
        add("2 waiting", f"flow processes held by {wait['cases']} waiting cases",
            str(wait["flow_processes_while_waiting"]), "0", wait["met"])
        add("2 waiting", "worker RSS before -> after",
            f"{fmt(mem['before']['worker_mb'], 'MB')} -> {fmt(mem['after']['worker_mb'], 'MB')}")
        add("2 waiting", "server RSS before -> after",
            f"{fmt(mem['before']['server_mb'], 'MB')} -> {fmt(mem['after']['server_mb'], 'MB')}")
        add("2 waiting", f"list paused runs, Prefect API ({wait['paused_runs_listed']})",
            fmt_summary(wait["list_paused_runs_prefect"]))
        add("2 waiting", f"list waiting cases, case DB ({wait['waiting_cases_listed']})",
            fmt_summary(wait["list_waiting_cases_db"]))
        add("2 waiting", f"time until all {wait['cases']} wait",
            fmt(wait["seconds_until_all_waiting"]))
    sweep = figures.get("sweep")
    if sweep and "error" not in sweep:
        for k, s in sweep["by_size"].items():
            label = f"3 sweep K={int(k):,}"
            add(label, f"sweep(as_of) wall ({s['cases_read']} rows read)",
                fmt_summary(s["sweep"], "range"))
            add(label, "cases read per second", fmt_summary(s["cases_read_per_second"], "range"),
                ">= 500/s", (s["cases_read_per_second"]["median"] or 0) >= 500)
            add(label, "open cases swept per second", fmt_summary(s["open_cases_per_second"],
                                                                  "range"))
            add(label, f"deliver_pending ({s['emails_sent']} emails)",
                fmt_summary(s["deliver_pending"], "range"))
            add(label, "reminders | overdue | missed | complainant",
                f"{s['reminders_queued']} | {s['overdue_reminders']} | {s['missed_deadlines']} | "
                f"{s['complainant_letters']}", "as seeded", s["checks_passed"])
            add(label, "due cases resumed (real runs) | flagged",
                f"{s['due_cases_resumed']} | {s['due_cases_flagged_for_a_later_wake']}")
            add(label, "second run: wall | emails sent",
                f"{fmt_summary(s['second_sweep'], 'range')} | {s['emails_sent_second_run']}",
                "0 sent", s["emails_sent_second_run"] == 0)
        if sweep.get("scaling"):
            sc = sweep["scaling"]
            add("3 sweep", f"time ratio K={sc['sizes'][1]:,} / K={sc['sizes'][0]:,}",
                f"{sc['time_ratio']:.1f} (size ratio {sc['size_ratio']:.0f})", "linear",
                sc["time_ratio"] <= sc["size_ratio"] * 1.5)
    nxt = figures.get("nextwait")
    if nxt and "error" not in nxt:
        for kind, stats in nxt["by_worker"].get("rprp", {}).items():
            stock = nxt["by_worker"].get("stock", {}).get(kind)
            ratio = nxt["stock_over_rprp_median"].get(kind)
            value = f"{fmt(stats['median'])} | {fmt(stats['p95'])} (n={stats['n']})"
            if stock:
                value += (f"; stock {fmt(stock['median'])} | {fmt(stock['p95'])}"
                          + (f"; stock / rprp {ratio:.1f}x" if ratio else ""))
            targeted = kind in nxt.get("targeted", [])
            add("8 next wait", f"{kind}: p50 | p95", value,
                "p95 <= 1 s" if targeted else "",
                (stats["p95"] is not None and stats["p95"] <= 1.0) if targeted else None)
        if nxt["errors"]:
            add("8 next wait", "failed cases", str(len(nxt["errors"])), "0", False)
    lat = figures.get("latency")
    if lat and "error" not in lat:
        s = lat["latency"]
        add("4 resume latency", f"account POST -> running, p50 | p95 (n={s['n']})",
            f"{fmt(s['median'])} | {fmt(s['p95'])}", "p95 <= 5 s", lat["met"])
        add("4 resume latency", "setting", lat["setting"])
    intake = figures.get("intake")
    if intake and "error" not in intake:
        s = intake["latency"]
        add("5 intake", f"referrals per second, {intake['clients']} clients",
            fmt_summary(intake["per_second"], "range"))
        modes = intake.get("modes") or {}
        if not modes:  # results written before the asynchronous referral existed
            add("5 intake", f"latency p50 | p95 (n={s['n']})",
                f"{fmt(s['median'])} | {fmt(s['p95'])}", "p95 < 250 ms", intake["met"])
        fast = f"async, {intake['clients']} client{'s' * (intake['clients'] > 1)}"
        for label, mode in modes.items():
            m = mode["latency"]
            add("5 intake", f"{label}: latency p50 | p95 (n={m['n']})",
                f"{fmt(m['median'])} | {fmt(m['p95'])}",
                "p95 < 250 ms" if label == fast else "",
                intake["met"] if label == fast else None)
        if intake["failed_requests"]:
            add("5 intake", "failed requests", str(intake["failed_requests"]), "0", False)
    suite = figures.get("suite")
    if suite and "error" not in suite:
        calls = suite["call"]
        if "clock" in calls:  # results written before the clock test existed have one call
            add("6 suite clock", "whole life, steps + real sweep: pytest call",
                fmt_summary(calls["clock"], "range"), "< 5 s", suite["met"])
            add("6 suite clock", "whole life through flow runs: pytest call",
                fmt_summary(calls["orchestrated"], "range"))
        else:
            add("6 suite clock", "whole-life test: pytest call", fmt_summary(calls, "range"),
                "< 5 s", suite["met"])
        add("6 suite clock", "pytest subprocess wall", fmt_summary(suite["wall"], "range"))
    central = figures.get("central")
    if central and "error" not in central:
        n, met, timed = central["cases"], central["met"], central["timings"]
        add("7 central record", f"import {n:,} cases", f"{central['import_seconds']:.1f} s",
            "< 60 s", met["import"])
        for key, what, target in (("foi", "FOI export, the decade (.csv)", "< 3 s"),
                                  ("disproportionality", "disproportionality, ethnicity",
                                   "< 1 s"),
                                  ("trends", "trends page: every figure, the decade",
                                   "< 1 s"),
                                  ("trends_one_unit", "trends page: one unit", ""),
                                  ("trends_charts", "trends: drawing its 10 charts (SVG)", "")):
            add("7 central record", what, fmt_summary(timed[key], "range"), target,
                met.get(key))
    return out


def table(results: dict[str, Any], markdown: bool = False) -> str:
    header = ("Figure", "Measure", "Result (median, spread)", "Target", "Met")
    body = rows(results)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    lines = [line, "-" * len(line)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def _machine(m: dict[str, Any]) -> str:
    v = m.get("versions", {})
    return "\n".join([
        f"- Cores: {m.get('cores')} ({m.get('cpu')}); memory {m.get('memory_gb')} GB "
        f"({m.get('memory_available_gb')} GB available at start); load average at start "
        f"{m.get('load_average_at_start')}, at end {m.get('load_average_at_end')}",
        f"- {m.get('os')}",
        f"- Python {m.get('python')}, Prefect {v.get('prefect')}, SQLAlchemy {v.get('sqlalchemy')}, "
        f"SQLModel {v.get('sqlmodel')}, FastAPI {v.get('fastapi')}, uvicorn {v.get('uvicorn')}, "
        f"httpx {v.get('httpx')}, psycopg {v.get('psycopg')}, asyncpg {v.get('asyncpg')}",
        f"- Databases: {m.get('database_server')}; git commit {m.get('git_commit')}",
        *_speed(m.get("speed")),
    ])


def _speed(speed: dict[str, float] | None) -> list[str]:
    if not speed:
        return []
    return [f"- Speed, to compare machines: a Python loop of 2 million additions "
            f"{speed['python_loop_seconds']:.2f} s; a new interpreter importing Prefect's engine "
            f"{speed['prefect_engine_import_seconds']:.1f} s (best of two, at the start)"]


def _phases(profile: dict[str, Any]) -> list[str]:
    lines = []
    for kind, p in profile.get("flow_processes", {}).items():
        phases = ", ".join(f"{name} {secs:.2f} s" for name, secs in p["mean_phase_seconds"].items())
        lines.append(f"- **{kind}** flow process ({p['processes']} profiled): "
                     f"{p['mean_process_seconds']:.2f} s wall, {p['mean_process_cpu_seconds']:.2f} s "
                     f"CPU on average: {phases}.")
        own = p.get("mean_project_code_seconds", {})
        if own:
            lines.append("  Inside project code: " + ", ".join(
                f"{k} {v:.3f} s" for k, v in own.items()) + ".")
    for entry in profile.get("import_time", []):
        top = ", ".join(f"{k} {v:.2f} s" for k, v in entry["top_packages_seconds"].items())
        lines.append(f"- `import prefect.flow_engine; import {entry['module']}`: "
                     f"{entry['seconds']:.2f} s (by package, self time: {top}).")
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        f"# RPRP bench: {meta['date']} on {meta['database']}",
        "",
        f"Command: `{meta['command']}`  ",
        f"Started {meta['started']}, took {meta.get('seconds', 0) / 60:.1f} min. "
        f"Sizes: {json.dumps(meta['sizes'])}.",
        "",
        "## Machine",
        "",
        _machine(results["machine"]),
        "",
        "## Figures",
        "",
        "Medians; the spread is p25-p75 where there are 5 or more values, min-max otherwise.",
        "",
        table(results, markdown=True),
        "",
    ]
    figures = results.get("figures", {})
    life = figures.get("lifecycle")
    if life and "error" not in life:
        parts += ["## 1. Lifecycle overhead", "",
                  f"{life['cases']} cases at once through notice, account, fact-finding decision, "
                  "discussion outcome, report, action review and closure, every input given the "
                  "moment its step waits; against the bare flow of the same shape (bench/bare.py: "
                  "same flow runs, tasks, suspends and resumes, no DB, no email) on the same "
                  f"server and worker, {life['repeats']} pair(s) of batches, "
                  f"alternating which goes first. Pairs: {json.dumps(life['pairs'])}.", "",
                  "Median seconds from one wait to the next (case | bare): " + ", ".join(
                      f"{k} {life['case_step_medians'].get(k, 0):.1f} | "
                      f"{life['bare_step_medians'].get(k, 0):.1f}"
                      for k in life["case_step_medians"]) + ".", ""]
    nxt = figures.get("nextwait")
    if nxt and "error" not in nxt:
        parts += ["## 8. Answer -> next wait", "",
                  f"{nxt['cases']} cases per worker "
                  + ("after a warm-up case" if nxt.get("warm_up", True) else "with no warm-up")
                  + ", one at a time, each "
                  f"input given the moment its step waits; {nxt['setting']}. Seconds from one "
                  "wait (or the answer to it) to the next, by kind of step, median | p95 "
                  "(min-max):", ""]
        for worker, kinds in nxt["by_worker"].items():
            parts += [f"- **{worker}**: " + "; ".join(
                f"{kind} {fmt(st['median'])} | {fmt(st['p95'])} "
                f"({fmt(st['min'])}-{fmt(st['max'])})" for kind, st in kinds.items())]
        parts += ["", "Where a resumed case run's time goes (its own state history; every "
                  "resumption of the case run, median | p95):", ""]
        for worker, split in nxt.get("phases_by_worker", {}).items():
            parts += [f"- **{worker}**: " + "; ".join(
                f"{name} {fmt(st['median'])} | {fmt(st['p95'])}" for name, st in split.items())]
        if nxt["errors"]:
            parts += ["", "Failed cases: " + "; ".join(nxt["errors"])]
        parts += [""]
    profile = results.get("profile")
    if profile:
        parts += ["## What dominates (profile of the slowest figure)", ""]
        parts += _phases(profile)
        if profile.get("summary"):
            parts += ["", profile["summary"]]
        parts += [""]
    for name, title in (("latency", "4. Resume latency"), ("intake", "5. Intake")):
        fig = figures.get(name)
        if fig and "error" not in fig and fig.get("phases") is not None:
            parts += [f"## {title}", "", f"Setting: {fig['setting']}.", ""]
            parts += [f"- {k}: {fmt_summary(v)}" for k, v in fig["phases"].items()]
            parts += [""]
        if fig and "error" not in fig and fig.get("components") is not None:
            parts += [f"## {title}", "", f"{fig['requests']} referrals x {fig['repeats']} "
                      f"repeats from {fig['clients']} concurrent httpx clients; {fig['worker']}. "
                      f"Status codes: {fig['statuses']}. Where a request's time goes (each "
                      "part timed alone, sequentially, in the bench process):", ""]
            parts += [f"- {k}: {fmt_summary(v)}" for k, v in fig["components"].items()]
            parts += [""]
    notes = results.get("notes")
    if notes:
        parts += ["## Notes", "", notes.strip(), ""]
    errors = {k: v["error"] for k, v in figures.items() if "error" in v}
    if errors:
        parts += ["## Errors", ""]
        parts += [f"- {k}: `{v.strip().splitlines()[-1]}`" for k, v in errors.items()]
        parts += [""]
    parts += [f"Full numbers: `{meta.get('json_name', 'the JSON file beside this one')}`.", ""]
    return "\n".join(parts)


def write(results: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    results["meta"]["json_name"] = json_path.name
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results), encoding="utf-8")
    return json_path, md_path
