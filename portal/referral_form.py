"""The PSD referral form: every field of ReferralIn, with labels, help text and error wording.

The form posts flat names (`officer.email`, `referred_on-day`); `parse` turns them into the
nested dict ReferralIn validates, and reports what cannot even be parsed (a half-typed date)
against the field, so the page can show one message beside each field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError

from models.enums import Origin, Rank, ReviewBody, ReviewerBasis, Route
from portal.validation import FieldError, field_errors
from tasks.intake import ReferralIn

YES_NO = (("yes", "Yes"), ("no", "No"))

ROUTES = {route: route.label for route in Route}
ORIGINS = {origin: origin.label for origin in Origin}
BASES = {
    ReviewerBasis.LINE_MANAGER: "The officer's line manager",
    ReviewerBasis.SENIOR_OFFICER: "Another officer senior to the officer",
    ReviewerBasis.SENIOR_STAFF: "A member of police staff the appropriate authority considers "
                                "more senior",
}
REVIEW_BODIES = {
    ReviewBody.LOCAL_POLICING_BODY: "Local policing body (police and crime commissioner)",
    ReviewBody.IOPC: "Independent Office for Police Conduct (IOPC)",
}
NOT_STATED = ("not_stated", "Not stated")
MONITORING_OPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "ethnicity": (NOT_STATED, ("asian_or_asian_british", "Asian or Asian British"),
                  ("black_or_black_british", "Black, Black British, Caribbean or African"),
                  ("mixed_or_multiple", "Mixed or multiple ethnic groups"),
                  ("white", "White"), ("other_ethnic_group", "Other ethnic group")),
    "sex": (NOT_STATED, ("female", "Female"), ("male", "Male")),
    "age_band": (NOT_STATED, ("under_25", "Under 25"), ("25_34", "25 to 34"),
                 ("35_44", "35 to 44"), ("45_54", "45 to 54"), ("55_plus", "55 or over")),
    "disability": (NOT_STATED, ("yes", "Yes"), ("no", "No")),
    "religion": (NOT_STATED, ("no_religion", "No religion"), ("buddhist", "Buddhist"),
                 ("christian", "Christian"), ("hindu", "Hindu"), ("jewish", "Jewish"),
                 ("muslim", "Muslim"), ("sikh", "Sikh"), ("other", "Any other religion")),
    "sexual_orientation": (NOT_STATED, ("heterosexual", "Heterosexual or straight"),
                           ("gay_or_lesbian", "Gay or lesbian"), ("bisexual", "Bisexual"),
                           ("other", "Other sexual orientation")),
}


@dataclass(frozen=True)
class Spec:
    path: str
    label: str
    kind: str  # text | email | textarea | radios | select | date | yesno
    noun: str
    hint: str = ""
    options: tuple[tuple[str, str], ...] = ()
    width: str = ""
    autocomplete: str = "off"
    rows: int = 5
    optional: bool = False
    default: str = ""

    @property
    def id(self) -> str:
        return self.path.replace(".", "-").replace("_", "-")

    @property
    def anchor(self) -> str:
        """Where the error summary links: the first input of the field."""
        return f"{self.id}-day" if self.kind == "date" else self.id


def _options(labels: Mapping[Any, str]) -> tuple[tuple[str, str], ...]:
    return tuple((key.value, text) for key, text in labels.items())


SPECS: tuple[Spec, ...] = (
    Spec("route", "Route into RPRP", "radios", "the route into RPRP", options=_options(ROUTES),
         hint="The statutory route by which the appropriate authority referred the matter."),
    Spec("origin", "Origin of the matter", "radios", "the origin of the matter",
         options=_options(ORIGINS),
         hint="Only a public complaint brings progress and outcome letters to a complainant."),
    Spec("incident_on", "Date of the incident", "date", "the date of the incident",
         hint="For example, 27 3 2025. If it happened over several days, give the first."),
    Spec("concern_reported_on", "Date the concern was reported", "date",
         "the date the concern was reported",
         hint="When it was formally reported or came to the appropriate authority's attention. "
              "It must be on or after 1 February 2020."),
    Spec("referred_on", "Date of the referral to RPRP", "date", "the date of the referral",
         hint="The date the appropriate authority decided to refer. It cannot be in the future."),
    Spec("allegation_category", "Allegation category", "text", "the allegation category",
         width="govuk-!-width-two-thirds",
         hint="As recorded for the IOPC and Home Office returns, for example "
              "'Discreditable conduct'."),
    Spec("rprp_reason", "Reason RPRP was issued", "textarea", "the reason RPRP was issued",
         rows=3, hint="Shown to the officer in the notice. Between 5 and 500 characters."),
    Spec("behaviour_summary", "Summary of the behaviour (internal)", "textarea",
         "the summary of the behaviour", rows=8,
         hint="The full internal summary for the reviewer. It is not sent to the complainant."),
    Spec("public_summary", "Public summary", "textarea", "the public summary", rows=4,
         hint="A redaction-ready summary shown to the officer and, where there is one, the "
              "complainant. Between 10 and 2,000 characters. Leave out names and personal "
              "details."),
    Spec("sexual_conduct", "Does the matter involve sexual conduct?", "yesno",
         "whether the matter involves sexual conduct", options=YES_NO, default="no"),
    Spec("aa_decision_maker", "Appropriate authority decision-maker", "text",
         "the appropriate authority decision-maker", width="govuk-!-width-two-thirds",
         autocomplete="name", hint="The name of the person who decided to refer."),
    Spec("aa_decision_maker_role", "Decision-maker's role (optional)", "text",
         "the decision-maker's role", width="govuk-!-width-two-thirds", optional=True,
         hint="For example, 'Detective Inspector, Professional Standards'."),
    # The participating officer
    Spec("officer.collar_number", "Collar or warrant number", "text", "the collar number",
         width="govuk-input--width-10", hint="Letters, digits and hyphens only."),
    Spec("officer.name", "Full name", "text", "the officer's full name",
         width="govuk-!-width-two-thirds"),
    Spec("officer.email", "Email address", "email", "the officer's email address",
         width="govuk-!-width-two-thirds",
         hint="The notice and the link to give an account are sent here."),
    Spec("officer.rank", "Rank", "select", "the officer's rank",
         options=(("", "Select a rank"), *((r.value, r.value.replace("_", " ").capitalize())
                                           for r in Rank))),
    Spec("officer.probationer", "Is the officer a probationer?", "yesno",
         "whether the officer is a probationer", options=YES_NO, default="no"),
    Spec("officer.special_constable", "Is the officer a special constable?", "yesno",
         "whether the officer is a special constable", options=YES_NO, default="no"),
    Spec("officer.unit", "Unit or BCU (optional)", "text", "the unit", optional=True,
         width="govuk-!-width-two-thirds"),
    # The reviewer
    Spec("reviewer.name", "Full name", "text", "the reviewer's full name",
         width="govuk-!-width-two-thirds"),
    Spec("reviewer.email", "Email address", "email", "the reviewer's email address",
         width="govuk-!-width-two-thirds",
         hint="The reviewer decides in the Prefect UI with this address. It cannot be the "
              "officer's."),
    Spec("reviewer.rank_or_grade", "Rank or grade (optional)", "text", "the reviewer's rank",
         optional=True, width="govuk-input--width-20"),
    Spec("reviewer.basis", "Why can this person be the reviewer?", "radios",
         "why this person can be the reviewer", options=_options(BASES)),
    Spec("reviewer.aa_opinion", "The appropriate authority's opinion", "textarea",
         "the appropriate authority's opinion", rows=3, optional=True,
         hint="Needed for a staff reviewer: why the appropriate authority considers them more "
              "senior than the officer."),
    # The complainant
    Spec("complainant", "Is there a complainant?", "radios", "whether there is a complainant",
         options=YES_NO,
         hint="Needed for a public complaint: the complainant gets progress and outcome "
              "letters."),
    Spec("complainant.name", "Complainant's full name", "text", "the complainant's name",
         width="govuk-!-width-two-thirds"),
    Spec("complainant.email", "Complainant's email address (optional)", "email",
         "the complainant's email address", optional=True, width="govuk-!-width-two-thirds",
         hint="Give an email address, a postal address, or both."),
    Spec("complainant.address", "Complainant's postal address (optional)", "textarea",
         "the complainant's postal address", rows=3, optional=True),
    Spec("complainant.review_body", "Who would hear a review of the complaint outcome?",
         "radios", "the review body", options=_options(REVIEW_BODIES),
         default=ReviewBody.LOCAL_POLICING_BODY.value),
    # Monitoring (protected characteristics)
    Spec("monitoring.ethnicity", "Ethnicity", "select", "the ethnicity",
         options=MONITORING_OPTIONS["ethnicity"], default="not_stated"),
    Spec("monitoring.sex", "Sex", "select", "the sex", options=MONITORING_OPTIONS["sex"],
         default="not_stated"),
    Spec("monitoring.age_band", "Age band", "select", "the age band",
         options=MONITORING_OPTIONS["age_band"], default="not_stated"),
    Spec("monitoring.disability", "Disability", "select", "the disability",
         options=MONITORING_OPTIONS["disability"], default="not_stated"),
    Spec("monitoring.religion", "Religion or belief", "select", "the religion or belief",
         options=MONITORING_OPTIONS["religion"], default="not_stated"),
    Spec("monitoring.sexual_orientation", "Sexual orientation", "select",
         "the sexual orientation", options=MONITORING_OPTIONS["sexual_orientation"],
         default="not_stated"),
)
BY_PATH = {spec.path: spec for spec in SPECS}
NOUNS = {spec.path: spec.noun for spec in SPECS}
COMPLAINANT_FIELDS = [s for s in SPECS if s.path.startswith("complainant.")]


@dataclass
class FormState:
    """What the page shows: values as typed, and one error per field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def view(self, path: str) -> dict[str, Any]:
        spec = BY_PATH[path]
        view: dict[str, Any] = {"spec": spec, "id": spec.id, "name": spec.path,
                                "error": self.errors.get(path, "")}
        if spec.kind == "date":
            view["parts"] = {part: self.values.get(f"{path}-{part}", "")
                             for part in ("day", "month", "year")}
        else:
            view["value"] = self.values.get(path, spec.default)
        return view

    def fields(self) -> dict[str, dict[str, Any]]:
        return {spec.path: self.view(spec.path) for spec in SPECS}

    def summary(self) -> list[tuple[str, str]]:
        """(anchor, message) in the order the fields appear on the page."""
        order = [s.path for s in SPECS]
        paths = sorted(self.errors, key=lambda p: order.index(p) if p in order else len(order))
        return [(BY_PATH[p].anchor if p in BY_PATH else "referral-form", self.errors[p])
                for p in paths]


def _date(path: str, noun: str, form: Mapping[str, str], errors: dict[str, str]) -> str | None:
    parts = {p: form.get(f"{path}-{p}", "").strip() for p in ("day", "month", "year")}
    if not any(parts.values()):
        errors[path] = f"Enter {noun}"
        return None
    missing = [p for p, v in parts.items() if not v]
    if missing:
        errors[path] = f"{noun[:1].upper()}{noun[1:]} must include a {' and '.join(missing)}"
        return None
    if not all(v.isdigit() for v in parts.values()):
        errors[path] = f"{noun[:1].upper()}{noun[1:]} must be a real date"
        return None
    if len(parts["year"]) != 4:
        errors[path] = "Year must include 4 numbers"
        return None
    try:
        return date(int(parts["year"]), int(parts["month"]), int(parts["day"])).isoformat()
    except ValueError:
        errors[path] = f"{noun[:1].upper()}{noun[1:]} must be a real date"
        return None


def parse(form: Mapping[str, str]) -> tuple[ReferralIn | None, FormState]:
    """Validate a posted form; the referral if it is valid, and what to show either way."""
    state = FormState(values={k: v for k, v in form.items() if k != "csrf_token"})
    errors = state.errors
    data: dict[str, Any] = {"officer": {}, "reviewer": {}, "monitoring": {}}
    has_complainant = form.get("complainant", "")
    if has_complainant not in ("yes", "no"):
        errors["complainant"] = "Select yes if there is a complainant"
    elif has_complainant == "yes":
        data["complainant"] = {}
    for spec in SPECS:
        if spec.path == "complainant":
            continue
        group, _, name = spec.path.rpartition(".")
        if group == "complainant" and "complainant" not in data:
            continue
        target = data[group] if group else data
        if spec.kind == "date":
            value = _date(spec.path, spec.noun, form, errors)
            if value is not None:
                target[name] = value
            continue
        raw = form.get(spec.path)
        if raw is None or (raw == "" and spec.kind in ("radios", "select", "yesno")):
            if spec.kind == "yesno" or spec.optional or spec.default:
                continue  # the model's default applies
            raw = None
        if spec.kind == "yesno" and raw is not None:
            target[name] = raw == "yes"
        elif raw is not None:
            target[name] = raw
        elif spec.kind in ("radios", "select"):
            errors.setdefault(spec.path, f"Select {spec.noun}")
        else:
            target[name] = ""
    try:
        referral = ReferralIn.model_validate(data)
    except ValidationError as exc:
        for error in field_errors(exc.errors(include_url=False), NOUNS):
            errors.setdefault(error.field, error.message)
        return None, state
    if errors:
        return None, state
    return referral, state


def api_errors(errors: list[FieldError]) -> list[dict[str, Any]]:
    return [{"field": e.field, "loc": ["body", *e.field.split(".")] if e.field else ["body"],
             "msg": e.message, "type": e.type} for e in errors]
