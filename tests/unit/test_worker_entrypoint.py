"""`rprp.worker` starts a run straight from its entrypoint when the deployment's only pull step
sets the working directory (as prefect.yaml's do), and leaves every other deployment to the
engine's own pull steps."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from rprp.worker import as_module_entrypoint, direct_entrypoint

ROOT = Path(__file__).resolve().parents[2]

STEP = "prefect.deployments.steps.set_working_directory"


def deployment(pull_steps: object, entrypoint: str = "flows/case_lifecycle.py:rprp_case"
               ) -> SimpleNamespace:
    return SimpleNamespace(entrypoint=entrypoint, pull_steps=pull_steps)


def test_a_working_directory_pull_step_becomes_the_run_s_directory(tmp_path: Path) -> None:
    found = direct_entrypoint(deployment([{STEP: {"directory": str(tmp_path)}}]))
    assert found == (tmp_path, "flows/case_lifecycle.py:rprp_case")  # no such package there


def test_the_project_s_flows_are_imported_as_modules_not_run_again_as_scripts() -> None:
    found = direct_entrypoint(deployment([{STEP: {"directory": str(ROOT)}}]))
    assert found == (ROOT, "flows.case_lifecycle:rprp_case")


@pytest.mark.parametrize(("entrypoint", "expected"), [
    ("flows/case_lifecycle.py:rprp_case", "flows.case_lifecycle:rprp_case"),
    ("flows/sweep.py:rprp_sweep", "flows.sweep:rprp_sweep"),
    ("flows/no_such_file.py:f", "flows/no_such_file.py:f"),
    ("rprp/../flows/sweep.py:f", "rprp/../flows/sweep.py:f"),
    ("bench/results/x.py:f", "bench/results/x.py:f"),  # not a package
    ("README.md:f", "README.md:f"),
])
def test_module_entrypoints(entrypoint: str, expected: str) -> None:
    assert as_module_entrypoint(ROOT, entrypoint) == expected


@pytest.mark.parametrize(("pull_steps", "entrypoint", "why"), [
    (None, "flows/a.py:f", "no pull step: Prefect's storage path, left alone"),
    ([], "flows/a.py:f", "no pull step"),
    ([{STEP: {"directory": "DIR"}},
      {"prefect.deployments.steps.run_shell_script": {"script": "make"}}], "flows/a.py:f",
     "another step must still run"),
    ([{"prefect.deployments.steps.git_clone": {"repository": "x"}}], "flows/a.py:f",
     "a clone is not a working directory"),
    ([{STEP: {"directory": "/no/such/directory"}}], "flows/a.py:f", "not a directory here"),
    ([{STEP: {"directory": "{{ $PWD }}"}}], "flows/a.py:f", "an unresolved template"),
    ([{STEP: {"directory": "DIR", "id": "x"}}], "flows/a.py:f", "an argument we do not know"),
    ([{STEP: {"directory": "DIR"}}], "flows.a.f", "a module path needs the pull step first"),
])
def test_anything_else_is_left_to_the_engine_s_pull_steps(
        tmp_path: Path, pull_steps: object, entrypoint: str, why: str) -> None:
    if isinstance(pull_steps, list):
        pull_steps = [{name: {k: (str(tmp_path) if v == "DIR" else v) for k, v in args.items()}
                       for name, args in step.items()} for step in pull_steps]
    assert direct_entrypoint(deployment(pull_steps, entrypoint)) is None, why


def test_no_deployment_is_left_alone() -> None:
    assert direct_entrypoint(None) is None
