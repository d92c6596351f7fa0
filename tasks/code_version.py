"""Which code a step ran under, for the audit trail: the flow's version and the deployment's.

A case waits for weeks while the force deploys new code, so one case's steps may run under
several versions. The flow's version is a content hash of the code a run imports (flows, tasks,
models, infra and the email templates), so two checkouts with the same files give the same
version and any change gives a new one; the deployment's version is what Prefect recorded when
the deployment was last registered (a git commit where the checkout has one). The flow sets both
for the run (`running_under`), and every audit event the run writes carries them
(tasks/records.py `audit`); an event written outside a flow run (the portal, a command) has none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("flows", "tasks", "models", "infra")
TEMPLATES = "templates/email"


@dataclass(frozen=True)
class RunVersions:
    """The versions an audit event records: the flow's and the deployment's (either may be "")."""

    flow: str
    deployment: str


_current: ContextVar[RunVersions | None] = ContextVar("rprp_run_versions", default=None)


def source_version(root: Path = ROOT) -> str:
    """A 12-hex content hash of the code under `root` that a flow run imports."""
    return _hash(root.resolve())


@cache
def _hash(root: Path) -> str:
    digest = hashlib.sha256()
    files = [p for top in SOURCES for p in (root / top).rglob("*.py")]
    files += [p for p in (root / TEMPLATES).rglob("*") if p.is_file()]
    for path in sorted(files):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


@contextmanager
def running_under(versions: RunVersions) -> Iterator[None]:
    """Within the block, audit events record `versions`."""
    token = _current.set(versions)
    try:
        yield
    finally:
        _current.reset(token)


def current() -> RunVersions | None:
    """The versions of the flow run this code runs in, if it runs in one."""
    return _current.get()
