"""A changed version of the code, as a force would deploy while cases wait: a copy of this
checkout with the kinds of change docs/changing-the-flow.md describes, deployed under the same
deployment names and run by a worker started from the copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from models.forms import DiscussionOutcome
from tests.support.stack import ROOT


@dataclass(frozen=True)
class Edit:
    """Replace `old` (found exactly once) with `new` in `path`."""

    path: str
    old: str
    new: str


# The inserted step: between the report being filed and the action plan being monitored, the
# new code tells the force's learning lead (an audit event, once per case, however often the
# run replays).
TELL_LEARNING_LEAD = '''

@task(name="tell-learning-lead", cache_policy=NO_CACHE, persist_result=False)
def tell_learning_lead(case_id: int) -> str:
    """New in this version: the learning lead is told of each filed report, once."""
    from models import AuditEvent
    from tasks.records import audit, lock_case

    with session_scope() as session:
        case = lock_case(session, case_id)
        told = session.exec(select(AuditEvent.id).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "learning_lead_told")).first()
        if told is None:
            audit(session, case, actor="system", action="learning_lead_told")
    return "told"


# -- the flow ---'''

CHANGES: tuple[Edit, ...] = (
    # A step inserted between two existing ones (file-report ... schedule-action-review).
    Edit("flows/case_lifecycle.py", "\n\n# -- the flow ---", TELL_LEARNING_LEAD),
    Edit("flows/case_lifecycle.py",
         "            case S.REPORT_SUBMITTED:\n",
         "            case S.REPORT_SUBMITTED:\n"
         "                tell_learning_lead.with_options(\n"
         "                    task_run_name=f\"tell-learning-lead {here.reference}\")(case_id)\n"),
    # A renamed task (the step's name, so the run graph's, and the Python name).
    Edit("tasks/steps.py", '"refer-back-to-psd", S.REFERRED_BACK',
         '"appropriate-authority-decision", S.REFERRED_BACK'),
    Edit("flows/case_lifecycle.py", "refer_back_to_psd = _decision(",
         "appropriate_authority_decision = _decision("),
    Edit("flows/case_lifecycle.py", "await decide(refer_back_to_psd,",
         "await decide(appropriate_authority_decision,"),
    # A new field, with a default, in the discussion's form.
    Edit("models/forms.py", "    held_on: date | SkipJsonSchema[None] = Field(",
         '    interpreter: str = Field(default="", max_length=200,\n'
         '                             title="Interpreter needed (which language)")\n'
         "    held_on: date | SkipJsonSchema[None] = Field("),
    # A retired waiting step: the fact-finding outcome is gone, with its rule.
    Edit("tasks/steps.py", "FACT_FINDING_DECISION, FACT_FINDING_OUTCOME, REFER_BACK_TO_PSD,",
         "FACT_FINDING_DECISION, REFER_BACK_TO_PSD,"),
    Edit("tasks/steps.py", "RETIRED: dict[CaseState, Retired] = {}",
         "RETIRED: dict[CaseState, Retired] = {S.FACT_FINDING: Retired(\n"
         "    S.DISCUSSION_SCHEDULING, \"Fact-finding is now recorded at the discussion\")}"),
    Edit("flows/case_lifecycle.py",
         "fact_finding_outcome = _decision(steps.FACT_FINDING_OUTCOME)\n", ""),
    Edit("flows/case_lifecycle.py",
         "            case S.FACT_FINDING:\n"
         "                await decide(fact_finding_outcome, steps.FACT_FINDING_OUTCOME, here)\n",
         ""),
)



class DiscussionOutcomeWithInterpreter(DiscussionOutcome):
    """The changed code's discussion form (the edit to models/forms.py above), as the portal
    builds it once it too runs the changed code."""

    interpreter: str = Field(default="", max_length=200,
                             title="Interpreter needed (which language)")


RETIRED_REASON = "Fact-finding is now recorded at the discussion"
NOT_COPIED = shutil.ignore_patterns(".git", ".venv", ".rprp", "__pycache__", "*.pyc", "tests",
                                    "bench", "docs", ".pytest_cache", ".ruff_cache",
                                    "test-artifacts", "node_modules")


def changed_copy(destination: Path) -> Path:
    """This checkout copied to `destination`, with CHANGES made; each edit must apply once."""
    shutil.copytree(ROOT, destination, ignore=NOT_COPIED)
    for edit in CHANGES:
        path = destination / edit.path
        text = path.read_text(encoding="utf-8")
        assert text.count(edit.old) == 1, f"{edit.path}: {edit.old!r} is not there once"
        path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")
    return destination


def deploy_from(root: Path, log_path: Path) -> None:
    """Register the work pool and every deployment from the checkout at `root` (deploy.py,
    as a force does after updating the workers' checkout): the same names, updated in place."""
    env = dict(os.environ, PYTHONPATH=str(root))
    with log_path.open("ab") as log:
        subprocess.run([sys.executable, str(root / "deployments" / "deploy.py")], cwd=root,
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=True, timeout=300)
