"""The Case Review Committee's Resume form for a reflective practice meeting (Prefect RunInput).

The choice is an enum whose values are the sentences the UI shows; the meeting record stores the
member's name. The plan is organisational: the flow refuses one that holds a recorded name.
"""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field

from models.meetings import CrcChoice


class CrcConsideration(RunInput):
    """The CRC considers the organisational learning points and plans action."""

    decision: CrcChoice = Field(title="What the Case Review Committee decides")
    plan: str = Field(default="", title="The action planned, or why the case meets the criteria "
                      "for a review (no names: roles and agencies only)")
