"""Who may decide what: the case's reviewer, or a PSD decision-maker for the authority."""

from __future__ import annotations

from models import Case
from rprp.settings import get_settings


class NotAllowedToDecide(PermissionError):
    pass


def _norm(value: str) -> str:
    return value.strip().lower()


def is_psd(person: str) -> bool:
    return _norm(person) in get_settings().decision_makers


def is_reviewer(case: Case, person: str) -> bool:
    return _norm(person) in {_norm(case.reviewer_email), _norm(case.reviewer_name)}


def check_decider(case: Case, person: str, *, reviewer_may: bool, psd_may: bool) -> str:
    """Return the normalised decider, or raise with a message fit for the audit log and the next
    form: it never repeats what was typed, which the form's description would show."""
    if (reviewer_may and is_reviewer(case, person)) or (psd_may and is_psd(person)):
        return _norm(person)
    who = " or ".join(
        w for w, ok in (("the case's reviewer", reviewer_may), ("a PSD decision-maker", psd_may))
        if ok
    )
    raise NotAllowedToDecide(f"The person named in the form may not take this decision: it needs "
                             f"{who}")
