"""A seeded month for the learning board: cases, reports, actions and learning items around
March 2034 (or any month after a year's shift), written straight into the case DB.

Seeding is idempotent (the cases carry fixed idempotency keys), so test modules of every layer
can seed the same month in the session's one database. Figures worked out by hand for March 2034
(no bank holiday in March 2034; British Summer Time from 26 March):

- cases referred in March: A (1 Mar), C (10 Mar), D (31 Mar) = 3; B (20 Feb), E (1 Apr) and
  F (28 Feb) are outside.
- reports filed in March (London dates): A on 15 Mar, B on 31 Mar at 23:30 BST (22:30 UTC) = 2;
  E's at 00:30 BST on 1 Apr (23:30 UTC on 31 Mar) is April's.
- working days referral to report: A (1 Mar, 15 Mar] = 10; B (20 Feb, 31 Mar] = 4 + 2 + 23 = 29;
  median 19.5.
- lessons for individuals by theme (the case's allegation category): A's 2 + B's 1 =
  "Incivility": 3 (E's are April's).
- action types agreed (A's and B's): training 2, management meeting 1.
- new items: I1, I2 (A, 15 Mar), I3 (B, 31 Mar 23:30 BST) = 3; by theme supervision 2, use of
  body-worn video 1; by unit Response North 2, Response South 1. I4 (00:30 BST on 1 Apr) and
  I5, I6 (February) are not new.
- closed in March: I2 (done 20 Mar), I6 (done 5 Mar) = 2; I4's "not accepted" at 00:30 BST on
  1 Apr is April's.
- overdue as of 3 Apr 2034 (the board's day: 1-2 Apr are a weekend): I1 (target 30 Mar) and
  I5 (target 28 Feb), both still open; I3's target is 1 May.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlmodel import select

from infra.db import session_scope
from models import Action, Case, Officer, Report
from models.enums import ActionType, CaseState, Origin, Rank, ReviewerBasis, Route
from models.learning import LearningItem, LearningItemEvent

OFFICER_NAME = "Morgan Quillfeather"
COMPLAINANT = "Riley Pennyworth"


@dataclass(frozen=True)
class SeededMonth:
    cases: dict[str, int]
    items: dict[str, int]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _shift(day: date, years: int) -> date:
    return day.replace(year=day.year + years)


def seed_board_month(tag: str = "lb34", years: int = 0) -> SeededMonth:
    """The March 2034 set (shifted by `years`: the same weekdays only when the shift keeps
    them, so tests of other months check what they need). Returns the case and item ids."""
    y = years

    def d(text: str) -> date:
        return _shift(date.fromisoformat(text), y)

    def t(text: str) -> datetime:
        value = _utc(text)
        return value.replace(year=value.year + y)

    cases_spec = {
        # key: referred_on, allegation, officer lessons, report filed at (UTC), action types
        "A": ("2034-03-01", "Incivility", "- Listen before answering.\n- Explain the stop.",
              "2034-03-15T10:00:00", [ActionType.TRAINING, ActionType.MANAGEMENT_MEETING]),
        "B": ("2034-02-20", "Incivility", "Slow down before deciding.", "2034-03-31T22:30:00",
              [ActionType.TRAINING]),
        "C": ("2034-03-10", "Use of force", "", None, []),
        "D": ("2034-03-31", "Incivility", "", None, []),
        "E": ("2034-04-01", "Incivility", "- One.\n- Two.", "2034-03-31T23:30:00",
              [ActionType.RESTORATIVE]),
        "F": ("2034-02-28", "Neglect of duty", "", None, []),
    }
    items_spec = {
        # key: case, part, theme, unit, created (UTC), status, owner, target, events
        "I1": ("A", 1, "supervision", "Response North", "2034-03-15T10:00:00", "open",
               "insp.north@force.example", "2034-03-30", []),
        "I2": ("A", 2, "supervision", "Response South", "2034-03-15T10:00:00", "done",
               "insp.south@force.example", "2034-03-25", [("status: done", "2034-03-20T09:00:00")]),
        "I3": ("B", 1, "use of body-worn video", "Response North", "2034-03-31T22:30:00",
               "action planned", "insp.north@force.example", "2034-05-01", []),
        "I4": ("E", 1, "training gap", "Custody", "2034-03-31T23:30:00", "not accepted", "", None,
               [("status: not accepted", "2034-03-31T23:30:00")]),
        "I5": ("F", 1, "welfare", "Custody", "2034-02-10T09:00:00", "open",
               "insp.custody@force.example", "2034-02-28", []),
        "I6": ("F", 2, "welfare", "Custody", "2034-02-10T09:00:00", "done",
               "insp.custody@force.example", "2034-03-10", [("status: done", "2034-03-05T12:00:00")]),
    }
    with session_scope() as session:
        cases: dict[str, int] = {}
        for key, (referred, allegation, officer_lessons, filed, action_types) in \
                cases_spec.items():
            idem = f"board-seed-{tag}-{y}-{key}"
            existing = session.exec(select(Case).where(Case.idempotency_key == idem)).first()
            if existing is not None:
                assert existing.id is not None
                cases[key] = existing.id
                continue
            officer = Officer(collar_number=f"{tag.upper()}{y}{key}", name=OFFICER_NAME,
                              email=f"officer.{tag}{y}{key.lower()}@force.example",
                              rank=Rank.CONSTABLE, unit="Response North")
            session.add(officer)
            session.flush()
            assert officer.id is not None
            referred_on = d(referred)
            # Closed, so no sweep duty of another test acts on these cases.
            case = Case(idempotency_key=idem, state=CaseState.CLOSED_COMPLETE, 
                        route=Route.SEVERITY_ASSESSMENT,
                        origin=Origin.PUBLIC_COMPLAINT, concern_reported_on=referred_on,
                        referred_on=referred_on, incident_on=referred_on,
                        allegation_category=allegation, rprp_reason="A seeded board case",
                        behaviour_summary="Seeded.", public_summary="Seeded.",
                        aa_decision_maker="PSD", officer_id=officer.id,
                        reviewer_name="Sgt Reviewer", reviewer_email="sgt.reviewer@force.example",
                        reviewer_basis=ReviewerBasis.LINE_MANAGER,
                        complainant_name=COMPLAINANT)
            session.add(case)
            session.flush()
            assert case.id is not None
            cases[key] = case.id
            if filed:
                at = t(filed)
                session.add(Report(case_id=case.id, issue_summary="Seeded issue.",
                                   discussion_summary="Seeded discussion.",
                                   officer_lessons=officer_lessons,
                                   force_lessons="Seeded lessons for the force.",
                                   review_period_weeks=8, agreed_on=at.date(),
                                   submitted_by="sgt.reviewer@force.example", submitted_at=at,
                                   sent_to_aa_at=at, pdr_due_on=at.date()))
                for action_type in action_types:
                    session.add(Action(case_id=case.id, type=action_type,
                                       description="Seeded action", owner="Sgt Reviewer",
                                       due_on=at.date()))
        session.flush()
        items: dict[str, int] = {}
        for key, (case_key, part, theme, unit, created, status, owner, target, events) in \
                items_spec.items():
            found = session.exec(select(LearningItem).where(
                LearningItem.case_id == cases[case_key], LearningItem.part == part)).first()
            if found is not None:
                assert found.id is not None
                items[key] = found.id
                continue
            item = LearningItem(case_id=cases[case_key], part=part, theme=theme, unit=unit,
                                text=f"Seeded lesson {key}: supervisors to brief every shift.",
                                owner=owner, target_on=d(target) if target else None,
                                status=status, created_at=t(created), updated_at=t(created),
                                closing_note="Briefings given." if status == "done" else "")
            session.add(item)
            session.flush()
            assert item.id is not None
            items[key] = item.id
            session.add(LearningItemEvent(item_id=item.id, at=t(created), actor="seed",
                                          action="created", detail="seeded"))
            for action, at in events:
                session.add(LearningItemEvent(item_id=item.id, at=t(at), actor="psd@force.example",
                                              action=action, detail="Seeded change."))
    return SeededMonth(cases=cases, items=items)
