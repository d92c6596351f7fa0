"""A person's decision, from the gateway to the flow: which step a paused run waits on, whether
this person may take it, what is wrong with the content (one rule set per form, shared by the
gateway and the flow), the confidential fields sealed into the case DB, and the submission row
by which the flow knows the decision came through the gateway and who took it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlmodel import Session, select

from models import (
    ActionReview,
    Case,
    DecisionSubmission,
    SealedText,
)
from models.enums import CaseState
from models.forms import FORMS, FormContext
from tasks import (
    casework,  # a module reference: casework uses this module too
    report_check,
)
from tasks import steps as step_table

# The rules, Prefect-free in tasks/answers.py; named here too for the gateway and its callers.
from tasks.answers import SEAL_PREFIX as SEAL_PREFIX
from tasks.answers import DecisionNotVerified as DecisionNotVerified
from tasks.answers import discussion_date as discussion_date
from tasks.answers import input_hash as input_hash
from tasks.answers import problems as problems
from tasks.answers import refusal as refusal
from tasks.answers import today_in_london as today_in_london
from tasks.answers import unseal as unseal
from tasks.answers import verified_submission as verified_submission
from tasks.discussion_invitation import invitation_problems
from tasks.records import officer_of
from tasks.report import open_actions
from tasks.steps import StepKind

ACTION_REVIEW = step_table.StepKind.ACTION_REVIEW


@dataclass(frozen=True)
class Step:
    """The step of a case that a paused flow run waits on, and the form it asks."""

    case_id: int
    flow_run_id: str
    wait: casework.Wait
    form: type[BaseModel]
    review_number: int | None = None

    @property
    def declared(self) -> step_table.Step:
        return step_table.step_of(self.wait.kind)

    @property
    def reviewer_may(self) -> bool:
        return self.declared.reviewer_may

    @property
    def psd_may(self) -> bool:
        return self.declared.psd_may


def form_class(session: Session, case: Case, kind: str,
               action_ids: list[int] | None = None) -> type[BaseModel]:
    """The form a step asks (its step names it, tasks/steps.py), built the same way by the
    flow and the gateway; a review asks about `action_ids`, by default the open actions."""
    step = step_table.step_of(kind)
    if action_ids is None and step.kind is ACTION_REVIEW:
        action_ids = [a.id for a in open_actions(session, case.id or 0) if a.id is not None]
    context = FormContext(upp_available=officer_of(session, case).upp_available,
                          complaint=case.origin.has_complainant_duties,
                          action_ids=tuple(action_ids or ()),
                          report_initial=report_initial(session, case)
                          if step.kind is step_table.StepKind.REPORT else ())
    return FORMS[step.form](context)


def report_initial(session: Session, case: Case) -> tuple[tuple[str, Any], ...]:
    """The report form's prefill: a returned round's text, else what the referral says."""
    assert case.id is not None
    returned = report_check.last_returned(session, case.id)
    values = (report_check.returned_text(returned) if returned is not None
              else report_check.initial_report(case))
    return tuple(sorted(values.items()))


def action_review_wait(case: Case, number: int) -> casework.Wait:
    return casework.action_review_wait(case, number)


def step_waiting_on(session: Session, flow_run_id: str) -> Step | None:
    """The person's step a case's run (or an action-plan review's run) waits on, if any."""
    case = session.exec(select(Case).where(Case.flow_run_id == flow_run_id)).first()
    if case is not None:
        wait = casework.wait_for(case, session)
        if wait is None or wait.declared is None:
            return None
        assert case.id is not None
        review = casework.opened_review(session, case) if wait.kind == ACTION_REVIEW else None
        return Step(case.id, flow_run_id, wait, form_class(session, case, wait.kind),
                    review.number if review else None)
    review = session.exec(
        select(ActionReview).where(ActionReview.flow_run_id == flow_run_id)).first()
    if review is None or review.completed_at is not None:
        return None
    case = session.get(Case, review.case_id)
    if case is None or case.state is not CaseState.ACTIONS_MONITORING:
        return None
    action_ids = [a.id for a in open_actions(session, review.case_id) if a.id is not None]
    return Step(review.case_id, flow_run_id, action_review_wait(case, review.number),
                form_class(session, case, ACTION_REVIEW, action_ids), review.number)


def case_of_run(session: Session, flow_run_id: str) -> Case | None:
    """The case a flow run belongs to: its lifecycle run or one of its action-plan reviews."""
    case = session.exec(select(Case).where(Case.flow_run_id == flow_run_id)).first()
    if case is not None:
        return case
    review = session.exec(
        select(ActionReview).where(ActionReview.flow_run_id == flow_run_id)).first()
    return session.get(Case, review.case_id) if review is not None else None


# -- the content: all of a form's errors at once, in the form's words --------------------------

def fit_to_asked(form: type[BaseModel], answer: dict[str, Any],
                 asked: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The answer with only the fields of the form the run asked when it paused (Prefect keeps
    that form's schema, and refuses a field it does not have). A field this code's form has
    gained since, left at its default, is left out: the run's code fills the default in again
    (or never had it), and the answer's hash is the same either way (tasks/answers.py). One set
    to anything else is named, since the waiting run cannot take it. docs/changing-the-flow.md."""
    fitted: dict[str, Any] = {}
    unasked: list[str] = []
    for name, value in answer.items():
        field = form.model_fields.get(name)
        if name in asked or field is None:
            fitted[name] = value
        elif field.is_required() or TypeAdapter(field.annotation or Any).dump_python(
                field.get_default(call_default_factory=True), mode="json") != value:
            unasked.append(_title(form, (name,)))
    return fitted, unasked


def _title(form: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """The field's title as the form shows it; an action's fields are named by its number."""
    if not loc or not isinstance(loc[0], str) or loc[0] not in form.model_fields:
        return "a field"
    field = form.model_fields[loc[0]]
    title = field.title or str(loc[0])
    if loc[0] == "actions" and len(loc) >= 3 and isinstance(loc[1], int):
        from models.forms import ReportAction

        inner = ReportAction.model_fields.get(str(loc[2]))
        return f"Action {loc[1] + 1}: {inner.title if inner and inner.title else 'a field'}"
    return title


def _message(form: type[BaseModel], error: Any) -> str:
    """One pydantic error in plain words: never the value that was typed."""
    kind, ctx = error["type"], error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        return "The form has a field this step does not ask for: reload the page and try again"
    title = _title(form, loc)
    if kind == "missing":
        return f"Enter '{title}'"
    if kind == "string_too_short":
        return f"'{title}' must be at least {ctx.get('min_length')} characters"
    if kind == "string_too_long":
        return f"'{title}' must be {ctx.get('max_length')} characters or fewer"
    if kind == "too_short":
        return f"Add at least {ctx.get('min_length')} to '{title}'"
    if kind == "enum":
        return f"Choose one of the options for '{title}'"
    if kind.startswith("date"):
        return f"Enter '{title}' as a real date"
    if kind in ("greater_than_equal", "less_than_equal", "int_parsing", "int_from_float"):
        field = form.model_fields.get(str(loc[0]))
        bounds = {type(m).__name__: m for m in (field.metadata if field else [])}
        low = getattr(bounds.get("Ge"), "ge", None)
        high = getattr(bounds.get("Le"), "le", None)
        if low is not None and high is not None:
            return f"'{title}' must be a whole number from {low} to {high}"
        return f"'{title}' must be a whole number"
    return f"Check '{title}'"


def parse_answer(form: type[BaseModel], data: Any) -> tuple[BaseModel | None, list[str]]:
    """The answer as the form's model, or the structural errors, each said once."""
    if not isinstance(data, dict):
        return None, ["The form was not sent properly: reload the page and try again"]
    try:
        return form.model_validate(data), []
    except ValidationError as exc:
        messages: list[str] = []
        for error in exc.errors():
            message = _message(form, error)
            if message not in messages:
                messages.append(message)
        return None, messages


# -- sealing and the submission row ----------------------------------------------------------

def seal(session: Session, case: Case, step: Step, data: dict[str, Any]) -> dict[str, Any]:
    """Move the step's confidential fields into the case DB; Prefect gets only references."""
    sealed = dict(data)
    for name in step.declared.sealed:
        if name not in sealed:
            continue
        token = secrets.token_hex(16)
        assert case.id is not None
        session.add(SealedText(token=token, case_id=case.id, step_key=step.wait.key,
                               field_name=name, text=str(sealed[name])))
        sealed[name] = f"{SEAL_PREFIX}{token}"
    return sealed


def sealed_tokens(step: Step, answer: BaseModel) -> list[str]:
    """The tokens an answer's sealed fields refer to."""
    values = [str(getattr(answer, name, "")) for name in step.declared.sealed]
    return [v.removeprefix(SEAL_PREFIX) for v in values if v.startswith(SEAL_PREFIX)]


def record_submission(session: Session, case: Case, step: Step, answer: BaseModel,
                      decided_by: str, decided_as: str) -> DecisionSubmission:
    assert case.id is not None
    row = DecisionSubmission(case_id=case.id, step_key=step.wait.key,
                             flow_run_id=step.flow_run_id, decided_by=decided_by,
                             decided_as=decided_as, input_hash=input_hash(answer))
    session.add(row)
    return row


def take(session: Session, case: Case, step: Step, data: Any, decided_by: str,
         decided_as: str, now: datetime | None = None,
         ) -> tuple[BaseModel | None, list[str], DecisionSubmission | None]:
    """What the gateway does with an answer before Prefect sees it: check it against the form
    and its rules (all errors at once), seal its confidential fields, record the submission.
    Returns (the answer to forward, [], its submission) or (None, errors, None)."""
    answer, errors = parse_answer(step.form, data)
    if answer is not None:
        errors = problems(session, case, step.wait.kind, answer, now)
        if step.wait.kind == StepKind.DISCUSSION_OUTCOME:
            # The flow applies these again (and records a refusal); here they are said at once.
            errors += invitation_problems(session, case, answer, now)
    if errors or answer is None:
        return None, errors, None
    forwarded = step.form.model_validate(seal(session, case, step, answer.model_dump(mode="json")))
    submission = record_submission(session, case, step, forwarded, decided_by.strip().lower(),
                                   decided_as)
    session.flush()
    return forwarded, [], submission

