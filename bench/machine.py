"""The machine a run was taken on, and what processes hold (Linux /proc, no psutil needed)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rprp.processes import children_map
from rprp.processes import descendants as process_tree

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("prefect", "sqlalchemy", "sqlmodel", "fastapi", "uvicorn", "httpx", "pydantic",
            "psycopg", "asyncpg", "aiosqlite", "pyinstrument")


def _meminfo_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def speed() -> dict[str, float]:
    """Two references for comparing machines, since the same run takes 2-3 times as long on one
    2-core machine as on another: a pure-Python loop in this process, and the start that every
    Prefect process pays (a new interpreter importing Prefect's engine). Best of two each."""
    def loop() -> float:
        t0 = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        return time.perf_counter() - t0

    def engine_import() -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import prefect.engine"], cwd=ROOT,
                       capture_output=True, timeout=120, check=True)
        return time.perf_counter() - t0

    return {"python_loop_seconds": round(min(loop(), loop()), 3),
            "prefect_engine_import_seconds": round(min(engine_import(), engine_import()), 2)}


def facts() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    memory = _meminfo_mb("MemTotal")
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _cpu_model(),
        "memory_gb": round(memory / 1024, 1) if memory else None,
        "memory_available_gb": round((_meminfo_mb("MemAvailable") or 0) / 1024, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "git_commit": _git_commit(),
        "load_average_at_start": load_average(),
        "speed": speed(),
    }


# --- processes ------------------------------------------------------------------------------

def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`."""
    return [child for child, _ in process_tree(pid)]


def direct_children(pid: int) -> list[int]:
    return list(children_map().get(pid, []))


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (shared pages counted per process)."""
    return round(sum(rss_mb(p) for p in [pid, *descendants(pid)]), 1)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


if __name__ == "__main__":  # python -m bench.machine: the facts a suite's wall time needs beside it
    import json

    print(json.dumps(facts(), indent=2))
