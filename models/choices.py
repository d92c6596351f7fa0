"""The choices people make at each step, as enums: Prefect-free, so the rules can use them.

An enum's values are what the Resume form shows, so they are sentences; the case record stores
member names (or the models.enums code a name maps to), never these words. The forms that ask
them (Prefect RunInput models) are in models/forms.py.
"""

from __future__ import annotations

from enum import StrEnum

from models.enums import ACTION_TYPE_LABELS, ActionType

# Field titles the rules quote in their refusals, as the forms show them.
HELD_ON_TITLE = "Date the discussion was held (or missed)"
AGREED_ON_TITLE = "Date the report was agreed"


class FactFindingChoice(StrEnum):
    NO_FACT_FINDING = "No fact-finding needed: go to the discussion"
    FACT_FINDING = "Fact-finding needed"
    REFER_BACK = "Substantial new evidence: refer back to PSD"


class FactFindingOutcomeChoice(StrEnum):
    COMPLETE = "Fact-finding complete: go to the discussion"
    REFER_BACK = "Substantial new evidence: refer back to PSD"


class AuthorityChoice(StrEnum):
    CONTINUE_SAME_SCOPE = "Continue RPRP, same scope"
    CONTINUE_NEW_NOTICE = "Continue RPRP with a new notice and a new account window"
    MISCONDUCT = "Misconduct proceedings"
    UPP = "Unsatisfactory performance procedures (UPP)"
    VETTING = "Vetting Regulations"
    NO_FURTHER_ACTION = "No further action"


class DiscussionChoice(StrEnum):
    INVITE = "Invite the officer: send the date, time and place below"
    MOVE = "Move the meeting: send a new invitation with the date, time and place below"
    CANCEL = "Cancel the meeting: withdraw the invitation"
    HELD_ENGAGED = "Discussion held and the officer engaged"
    DID_NOT_ATTEND = "Officer did not attend"
    DID_NOT_ENGAGE = "Officer attended but did not engage"


class NonEngagementChoice(StrEnum):
    RE_INVITE = "Re-invite the officer to a discussion"
    UPP = "Unsatisfactory performance procedures (UPP)"
    FORMAL_PROCEEDINGS = "Formal (misconduct) proceedings"


class Agreement(StrEnum):
    AGREED = "The officer agrees the report"
    NOT_AGREED = "The officer does not agree (comments recorded)"


# The action types as the form shows them; `action_type` maps back to the stored code. (No
# docstring: the UI would show it under the field as if it were guidance.)
class ActionChoice(StrEnum):
    MANAGEMENT_MEETING = ACTION_TYPE_LABELS[ActionType.MANAGEMENT_MEETING]
    SHADOWING_MENTORING = ACTION_TYPE_LABELS[ActionType.SHADOWING_MENTORING]
    RESTORATIVE = ACTION_TYPE_LABELS[ActionType.RESTORATIVE]
    TRAINING = ACTION_TYPE_LABELS[ActionType.TRAINING]
    NO_FURTHER_ACTION = ACTION_TYPE_LABELS[ActionType.NO_FURTHER_ACTION]

    @property
    def action_type(self) -> ActionType:
        return ActionType[self.name]


class ReviewOutcome(StrEnum):
    CLOSE = "Completed: close this action"
    KEEP_OPEN = "Not yet complete: keep open"


class QualityCheckChoice(StrEnum):
    """PSD's answer to the quality check of a report (seed 001)."""

    ACCEPT = "Accept: file the report to the appropriate authority"
    RETURN = "Return it to the reviewer with comments"


# What the reviewer leaves in the discussion summary to keep the one they gave before PSD
# returned the report (that text is sealed in the case DB, so the form cannot show it).
KEEP_DISCUSSION_SUMMARY = "(unchanged: keep the summary I gave before)"
