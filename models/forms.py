"""The forms people fill in Prefect's Resume UI (RunInput).

Choices are enums, never bools: one Prefect UI omits a false switch. An enum's values are what the
UI shows, so they are sentences; the case record stores member names (or the models.enums code a
name maps to), never these words. Titles carry no "(optional)": the UI adds "(Optional)" itself.
Prefect 3.8.8's UI draws every plain string as a one-row textarea (only `enum`, `date`,
`date-time` and `json-string` change the control), so one-line answers are enums or dates where
the answer is one of a known set. Case-specific forms (UPP hidden where the Performance
Regulations do not apply; one field per action at a review) are built per case by the functions
at the bottom, deterministically, so a replay rebuilds the same form.
No form asks who is deciding: the gateway takes the decider from the signed-in person
(tasks/decisions.py). A field a step declares `sealed` (tasks/steps.py) never reaches Prefect:
the gateway stores it in the case DB and Prefect's input holds only `sealed:<token>`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from prefect.input import RunInput
from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from models.choices import (
    AGREED_ON_TITLE,
    HELD_ON_TITLE,
    ActionChoice,
    Agreement,
    AuthorityChoice,
    DiscussionChoice,
    FactFindingChoice,
    FactFindingOutcomeChoice,
    NonEngagementChoice,
    QualityCheckChoice,
    ReviewOutcome,
)
from models.enums import MeetingFormat

# The choices are in models.choices (no Prefect there, so the rules use them), imported here
# for the forms that ask them; callers may still import them from here.


class FactFindingDecision(RunInput):
    choice: FactFindingChoice = Field(title="Fact-finding decision")
    reasons: str = Field(default="", max_length=2000, title="Reasons")


class FactFindingOutcome(RunInput):
    choice: FactFindingOutcomeChoice = Field(title="Outcome of fact-finding")
    reasons: str = Field(default="", max_length=2000, title="Reasons")


def _no_default(schema: dict[str, Any]) -> None:
    """An empty optional field: no `null` default for the form to show or send back."""
    schema.pop("default", None)


class DiscussionOutcome(RunInput):
    """The discussion step: invite the officer, move or cancel the meeting, or record how it went.

    Every field but the choice is optional in the form; which ones a choice needs is checked when
    the answer is applied (tasks/discussion_invitation.py), and a missing one is refused with
    its reason, the step asked again.
    """

    choice: DiscussionChoice = Field(title="What do you want to do?")
    meeting_date: date | SkipJsonSchema[None] = Field(
        default=None, title="Date of the meeting", json_schema_extra=_no_default,
        description="To invite or move: the day of the discussion")
    meeting_time: str = Field(
        default="", max_length=5, pattern=r"^$|^([01]?[0-9]|2[0-3])[:.][0-5][0-9]$",
        title="Start time (24-hour clock, UK time, e.g. 10:00)")
    duration_minutes: int = Field(default=60, ge=15, le=480, title="Length of the meeting (minutes)")
    meeting_format: MeetingFormat = Field(default=MeetingFormat.IN_PERSON, title="How it is held")
    place: str = Field(
        default="", max_length=500, title="Place, or the phone number or video link of the call")
    held_on: date | SkipJsonSchema[None] = Field(
        default=None, title=HELD_ON_TITLE, json_schema_extra=_no_default,
        description="To record the outcome; leave empty to use the date of the invitation")


class ReportAction(BaseModel):
    type: ActionChoice = Field(title="Action type")
    description: str = Field(min_length=3, max_length=1000, title="What will be done")
    owner: str = Field(min_length=2, max_length=200, title="Owner")
    due_on: date = Field(title="Due date")


class ReportForm(RunInput):
    """The Reflective Review Development Report, with the reg 70(2) content."""

    issue_summary: str = Field(min_length=10, max_length=10000,
                               title="Summary of the issue and relevant background")
    discussion_summary: str = Field(min_length=10, max_length=10000,
                                    title="Summary of the reflective practice discussion")
    actions: list[ReportAction] = Field(min_length=1, title="Key actions, each with a time limit")
    officer_lessons: str = Field(min_length=3, max_length=5000,
                                 title="Lessons for the participating officer")
    force_lessons: str = Field(min_length=3, max_length=5000,
                               title="Lessons for line management or the force ('None' if none)")
    review_period_weeks: int = Field(ge=1, le=52, title="Review period (weeks)")
    agreed_on: date = Field(title=AGREED_ON_TITLE)
    agreement: Agreement = Field(title="Does the officer agree the report?")
    officer_comments: str = Field(default="", max_length=5000, title="Officer's comments")


class ReportQualityCheck(RunInput):
    """PSD's check of a submitted report before it is filed."""

    choice: QualityCheckChoice = Field(title="Quality check of the report")
    comments: str = Field(
        default="", max_length=5000, title="Comments for the reviewer",
        description="Needed to return the report: what to add or change. Do not quote the "
                    "discussion; the reviewer sees these with the report form.")


COMPLAINANT_SUMMARY_DEFAULT = (
    "The matter you complained about has been discussed in a reflective practice review. "
    "Learning was identified from it, and the actions agreed will be reviewed to make sure "
    "they are completed."
)


class ComplaintReportForm(ReportForm):
    """The report of a case behind which there is a public complaint: it also says, in words
    written for them, what the complainant's outcome letter tells them about the learning."""

    complainant_summary: str = Field(
        min_length=10, max_length=3000,
        title="What we tell the complainant about the learning (the complainant will read "
              "this; do not name the officer)",
        description="Goes into the outcome letter to the complainant as written. Plain words; "
                    "no names, collar numbers or details of the discussion.",
    )


def prefilled(form: type[RunInput], **values: Any) -> type[RunInput]:
    """The form with some fields prefilled, keeping their titles and rules (Prefect's
    `with_initial_data` keeps only the type, so the Resume form would lose both)."""
    fields: dict[str, Any] = {}
    for name, value in values.items():
        info = copy.copy(form.model_fields[name])
        info.default = value
        fields[name] = (info.annotation, info)
    model = create_model(form.__name__, __base__=form, **fields)

    def still_required(schema: dict[str, Any]) -> None:
        """A prefilled field is still one the person must leave filled in."""
        required = list(schema.get("required", []))
        schema["required"] = required + [n for n in values if n not in required]

    model.model_config["json_schema_extra"] = still_required
    model.model_rebuild(force=True)
    return model


def authority_decision_form(upp_available: bool) -> type[RunInput]:
    """The AA's decision after a referral back; UPP is absent where it cannot apply."""
    return _choice_form("AuthorityDecision", AuthorityChoice, upp_available,
                        "Appropriate authority decision")


def non_engagement_form(upp_available: bool) -> type[RunInput]:
    return _choice_form("NonEngagementDecision", NonEngagementChoice, upp_available,
                        "Decision on non-engagement")


def _choice_form(name: str, choices: type[StrEnum], upp_available: bool,
                 title: str) -> type[RunInput]:
    allowed = [c for c in choices if upp_available or c.name != "UPP"]
    enum = StrEnum(f"{name}Choice", {c.name: c.value for c in allowed})  # type: ignore[misc]
    return create_model(
        name if upp_available else f"{name}NoUpp",
        __base__=RunInput,
        choice=(enum, Field(title=title)),
        reasons=(str, Field(min_length=3, max_length=2000, title="Reasons")),
    )


def action_review_form(action_ids: list[int]) -> type[RunInput]:
    """One note and one outcome per open action, named by action id."""
    fields: dict[str, Any] = {}
    for action_id in action_ids:
        fields[f"action_{action_id}_note"] = (
            str, Field(min_length=3, max_length=2000, title=f"Action {action_id}: review note"))
        fields[f"action_{action_id}_outcome"] = (
            ReviewOutcome, Field(title=f"Action {action_id}: outcome"))
    return create_model("ActionReviewForm", __base__=RunInput, **fields)


@dataclass(frozen=True)
class FormContext:
    """What a case-specific form depends on: whether UPP applies to the officer, whether a
    complainant reads the outcome, and the open actions a review asks about."""

    upp_available: bool = True
    complaint: bool = False
    action_ids: tuple[int, ...] = ()
    report_initial: tuple[tuple[str, Any], ...] = ()  # the report form's prefilled fields


def _report_form(context: FormContext) -> type[RunInput]:
    """The report, prefilled with what the case knows (or the text of a returned round)."""
    values = dict(context.report_initial)
    if context.complaint:
        values.setdefault("complainant_summary", COMPLAINANT_SUMMARY_DEFAULT)
        return prefilled(ComplaintReportForm, **values)
    values.pop("complainant_summary", None)
    return prefilled(ReportForm, **values) if values else ReportForm


# Each step of tasks/steps.py names its form here (Step.form); the step table stays Prefect-free.
FORMS: dict[str, Callable[[FormContext], type[RunInput]]] = {
    "FactFindingDecision": lambda _: FactFindingDecision,
    "FactFindingOutcome": lambda _: FactFindingOutcome,
    "AuthorityDecision": lambda c: authority_decision_form(c.upp_available),
    "DiscussionOutcome": lambda _: DiscussionOutcome,
    "NonEngagementDecision": lambda c: non_engagement_form(c.upp_available),
    "ReportForm": _report_form,
    "ActionReviewForm": lambda c: action_review_form(list(c.action_ids)),
    "ReportQualityCheck": lambda _: ReportQualityCheck,
}
