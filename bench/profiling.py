"""What a flow process spends its time on: pyinstrument profiles of the flow processes a worker
starts (bench.profiled_engine), cut into the engine's phases, and `python -X importtime` of the
flow modules by package."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIRS = ("flows", "tasks", "models", "rprp", "portal")


def _is_project(path: str | None) -> bool:
    if not path:
        return False
    try:
        rel = Path(path).resolve().relative_to(ROOT)
    except (ValueError, OSError):
        return False
    return rel.parts[0] in PROJECT_DIRS if rel.parts else False


def _package(path: str | None) -> str:
    if not path:
        return "?"
    match = re.search(r"site-packages/([^/]+)", path)
    if match:
        return match.group(1).removesuffix(".py")
    if _is_project(path):
        return "project"
    return "python"


def _phase(frame: Any) -> str | None:
    """The engine phase a frame directly under the process's root stands for."""
    fn, path = frame.function or "", frame.file_path or ""
    if fn == "<module>" and path.endswith("prefect/__init__.py"):
        return "import prefect"
    if fn == "import_module":
        return "import the flow's module"
    if fn == "load_flow_run":
        return "read the flow run (API)"
    if fn == "load_flow":
        return "load the flow (pull step, entrypoint)"
    if fn == "_drive_run_flow_result" or fn == "run_flow":
        return "run the flow"
    if fn == "_find_and_load":
        return "import prefect's engine"
    return None


def _phases(frame: Any, out: dict[str, float], depth: int = 0) -> None:
    for child in frame.children:
        phase = _phase(child)
        if phase is not None:
            out[phase] += child.time
        elif depth < 12:
            _phases(child, out, depth + 1)


def _own_code(frame: Any, out: dict[str, float], inside: bool = False) -> None:
    """Time inside project code (with what it calls), split by the library doing the work."""
    if not inside and _is_project(frame.file_path):
        out["project code (total)"] += frame.time
        inside = True
    if inside:
        own = frame.time - sum(c.time for c in frame.children)
        pkg = _package(frame.file_path)
        label = {"sqlalchemy": "case DB (SQLAlchemy)", "sqlmodel": "case DB (SQLAlchemy)",
                 "psycopg": "case DB (driver)", "jinja2": "email templates (Jinja2)",
                 "markupsafe": "email templates (Jinja2)", "aiosmtplib": "SMTP",
                 "project": "project code itself"}.get(pkg, f"other: {pkg}")
        if frame.function in ("[self]", "[await]") or not frame.file_path:
            label = "waiting (I/O, other threads)"
        out[label] += own
    for child in frame.children:
        _own_code(child, out, inside)


def _kind(session: Any) -> str:
    text = " ".join(f.function or "" for f in _walk(session.root_frame(), 40))
    if "bare_case" in text or "bare_review" in text:
        return "bare"
    if "rprp_action_review" in text:
        return "review"
    if "rprp_case" in text:
        return "case"
    return "other"


def _walk(frame: Any, limit: int) -> list[Any]:
    found, todo = [], [(frame, 0)]
    while todo:
        node, depth = todo.pop()
        found.append(node)
        if depth < limit:
            todo.extend((c, depth + 1) for c in node.children)
    return found


def analyse_profiles(directory: Path) -> dict[str, Any]:
    from pyinstrument.session import Session

    by_kind: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.pyisession")):
        session = Session.load(str(path))
        root = session.root_frame()
        if root is None:
            continue
        kind = _kind(session)
        entry = by_kind.setdefault(kind, {"processes": 0, "wall": 0.0, "cpu": 0.0,
                                          "phases": defaultdict(float),
                                          "own_code": defaultdict(float)})
        entry["processes"] += 1
        entry["wall"] += session.duration
        entry["cpu"] += session.cpu_time or 0.0
        _phases(root, entry["phases"])
        _own_code(root, entry["own_code"])
    out: dict[str, Any] = {}
    for kind, entry in by_kind.items():
        n = entry["processes"]
        phases = {k: round(v / n, 3) for k, v in sorted(entry["phases"].items(),
                                                         key=lambda kv: -kv[1])}
        accounted = sum(phases.values())
        phases["other (exit, engine set-up)"] = round(entry["wall"] / n - accounted, 3)
        out[kind] = {
            "processes": n,
            "mean_process_seconds": round(entry["wall"] / n, 3),
            "mean_process_cpu_seconds": round(entry["cpu"] / n, 3),
            "mean_phase_seconds": phases,
            "mean_project_code_seconds": {k: round(v / n, 3) for k, v in sorted(
                entry["own_code"].items(), key=lambda kv: -kv[1]) if v / n >= 0.001},
        }
    return out


def render_text(directory: Path, kind: str = "case", limit_chars: int = 12000) -> str:
    """pyinstrument's own text rendering of the longest profile of one kind."""
    from pyinstrument.renderers import ConsoleRenderer
    from pyinstrument.session import Session

    best = None
    for path in sorted(directory.glob("*.pyisession")):
        session = Session.load(str(path))
        if _kind(session) == kind and (best is None or session.duration > best.duration):
            best = session
    if best is None:
        return ""
    text = ConsoleRenderer(unicode=False, color=False, show_all=False, short_mode=False,
                           time="seconds").render(best)
    return text[:limit_chars]


def import_time(module: str, repeats: int = 3) -> dict[str, Any]:
    """`python -X importtime -c 'import prefect.flow_engine; import <module>'`: seconds to import
    everything (best of `repeats`) and the packages that take longest (self time, best run)."""
    best_total, best_packages = None, {}
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c",
             f"import prefect.flow_engine; import {module}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
            env={**_clean_env(), "PYTHONPATH": str(ROOT)})
        total, packages = 0, defaultdict(int)
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
            if not match:
                continue
            self_us, name = int(match.group(1)), match.group(4)
            total += self_us
            top = name.split(".")[0]
            packages["project" if top in PROJECT_DIRS or top == "bench" else top] += self_us
        if total and (best_total is None or total < best_total):
            best_total, best_packages = total, packages
    top = sorted(best_packages.items(), key=lambda kv: -kv[1])[:10]
    return {"module": module, "seconds": round((best_total or 0) / 1e6, 3),
            "top_packages_seconds": {k: round(v / 1e6, 3) for k, v in top}}


def _clean_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["DO_NOT_TRACK"] = "1"
    return env
