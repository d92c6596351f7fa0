"""The packages form layers, each importing only those below it, so the domain can be read and
tested apart from the orchestrator, the portal and the commands.

    models  <  infra  <  tasks  <  flows
                         tasks  <  portal  <  rprp (runtime)  <  bench  <  rprp.cli / rprp.commands

`models` holds the records and choices; `infra` the settings, database and mail sink; `tasks` the
process's rules and steps; `flows` the Prefect flows that run them; `portal` the web app; `rprp`'s
runtime the stack's processes; the commands sit on top of everything. A cycle (say `tasks`
importing a command) would tie the rules to a CLI again; this test names the import that does it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ALLOWED: dict[str, frozenset[str]] = {
    "models": frozenset(),
    "infra": frozenset({"models"}),
    "tasks": frozenset({"models", "infra"}),
    "flows": frozenset({"models", "infra", "tasks"}),
    "deployments": frozenset(),
    "portal": frozenset({"models", "infra", "tasks"}),
    "rprp": frozenset({"models", "infra", "tasks", "flows", "portal"}),
    "bench": frozenset({"models", "infra", "tasks", "flows", "portal", "rprp"}),
    "commands": frozenset({"models", "infra", "tasks", "flows", "portal", "rprp", "bench"}),
}
# The domain's rules: no orchestrator and no SMTP, so they run with a database and nothing else.
PURE = ("models/enums.py", "models/choices.py", "tasks/steps.py", "tasks/answers.py",
        "tasks/casework.py", "tasks/records.py", "tasks/deadlines.py", "tasks/calendar.py",
        "tasks/letters.py", "tasks/outbox.py", "tasks/people.py", "tasks/history_import.py",
        "tasks/foi.py", "tasks/disproportionality.py", "tasks/trends.py", "tasks/identifiers.py",
        "models/meetings.py", "tasks/meetings.py", "tasks/meeting_links.py",
        "tasks/meeting_decisions.py")
IO_LIBRARIES = ("prefect", "aiosmtplib", "httpx", "fastapi", "starlette")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "rprp" and len(parts) > 1 and parts[1] in {"cli", "commands", "__main__"}:
        return "commands"
    return parts[0] if parts[0] in ALLOWED else None


def imports(path: Path) -> list[str]:
    """Every absolute import in the file, including those inside functions."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def sources() -> list[Path]:
    return sorted(p for top in ("models", "infra", "tasks", "flows", "deployments", "portal",
                                "rprp", "bench") for p in (ROOT / top).rglob("*.py"))


def test_each_package_imports_only_the_layers_below_it() -> None:
    wrong: list[str] = []
    for path in sources():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mine = layer_of(module)
        assert mine is not None
        for imported in imports(path):
            theirs = layer_of(imported)
            if theirs is not None and theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(ROOT)} ({mine}) imports {imported} ({theirs})")
    assert wrong == []


@pytest.mark.parametrize("relative", PURE)
def test_the_rules_import_no_orchestrator_and_no_mail_server(relative: str) -> None:
    used = [m for m in imports(ROOT / relative) if m.split(".")[0] in IO_LIBRARIES]
    assert used == [], f"{relative} imports {used}"


def test_the_layer_check_sees_a_violation() -> None:
    """The check itself: an import from a higher layer is reported, one from a lower is not."""
    assert layer_of("rprp.commands.up") == "commands"
    assert layer_of("rprp.stack") == "rprp"
    assert "portal" not in ALLOWED["tasks"] and "infra" in ALLOWED["tasks"]
