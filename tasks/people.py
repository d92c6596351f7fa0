"""Who may decide what: the case's reviewer, or a PSD decision-maker for the authority.

The person is always the signed-in one (the gateway's identity), never a typed name.
"""

from __future__ import annotations

from models import Case

REVIEWER_BASIS = "reviewer"
PSD_BASIS = "psd-decision-maker"


class NotAllowedToDecide(PermissionError):
    pass


def _norm(value: str) -> str:
    return value.strip().lower()


def is_reviewer(case: Case, email: str) -> bool:
    return bool(email.strip()) and _norm(email) == _norm(case.reviewer_email)


def needed(reviewer_may: bool, psd_may: bool) -> str:
    return " or ".join(
        w for w, ok in (("the case's reviewer", reviewer_may), ("a PSD decision-maker", psd_may))
        if ok
    )


def entitlement(case: Case, email: str, *, decision_maker: bool, reviewer_may: bool,
                psd_may: bool) -> str:
    """The basis on which this person may take the step, or NotAllowedToDecide.

    The reviewer's basis comes first: a reviewer who is also a decision-maker decides as the
    reviewer on their own case.
    """
    if reviewer_may and is_reviewer(case, email):
        return REVIEWER_BASIS
    if psd_may and decision_maker:
        return PSD_BASIS
    raise NotAllowedToDecide(f"You may not take this decision: it needs "
                             f"{needed(reviewer_may, psd_may)}")


def check_entitled(case: Case, decided_by: str, decided_as: str, *, reviewer_may: bool,
                   psd_may: bool) -> str:
    """The flow's re-check of the gateway's basis against the case as it is now."""
    if decided_as == REVIEWER_BASIS and reviewer_may and is_reviewer(case, decided_by):
        return _norm(decided_by)
    if decided_as == PSD_BASIS and psd_may:
        return _norm(decided_by)
    raise NotAllowedToDecide(f"{decided_by} may not take this decision: it needs "
                             f"{needed(reviewer_may, psd_may)}")
