"""The monthly learning board (seed 001: "a reflective practice board which reviews the learning
outcomes each month"): its pack for a month, kept, emailed to the board's members, and the
board's decisions on the items it discussed, recorded in each item's history.

Pure rules: each function takes the caller's `Session` and the day or instant it acts at; nothing
here talks to Prefect (flows/learning_board.py does). The pack is built once per month and stored
(`LearningBoardPack`), so the page the board reads in its meeting shows the figures the email
gave, and a second run for the month finds the pack and queues nothing new.

What the pack may hold: counts, and learning items as the register shows them (their reference,
theme, unit, status and their text, which the register has already checked for names). Never a
case, an officer or a complainant: lessons for individuals are counted by theme only, never
listed with their case.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from infra.settings import get_settings
from models import Action, Case, Report, as_utc
from models.learning import LearningBoardPack, LearningItem, LearningItemEvent
from tasks import learning_register as register
from tasks import outbox
from tasks.calendar import LONDON, WorkingCalendar, england_and_wales

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
NO_THEME = "not yet assigned"
NO_UNIT = "not given"
CLOSING = (f"status: {register.LearningStatus.DONE.value}",
           f"status: {register.LearningStatus.NOT_ACCEPTED.value}")
EMAIL_KIND = "learning_board_pack"


class BoardRefused(ValueError):
    """A board decision that breaks a rule, or a month that is not one: nothing was saved."""


class BoardDecision(StrEnum):
    """What the board decides on an item it discussed."""

    AGREED = "agreed"
    ACTION_CHANGED = "action changed"
    CLOSED = "closed"
    DEFERRED = "deferred"


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """`2034-03` -> Month(2034, 3); anything else is refused with the form it needs."""
        match = MONTH.match(text.strip())
        if not match:
            raise BoardRefused(f"Give the month as YYYY-MM, not {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @classmethod
    def before(cls, day: date) -> Month:
        """The month before the one `day` is in: the month a board meeting on `day` reviews."""
        last = day.replace(day=1) - timedelta(days=1)
        return cls(last.year, last.month)

    @property
    def key(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_first_day(self) -> date:
        return (self.first_day + timedelta(days=32)).replace(day=1)

    @property
    def label(self) -> str:
        return self.first_day.strftime("%B %Y")

    def window(self) -> tuple[datetime, datetime]:
        """The month's instants in UTC, [start, end): its days as they are in London."""
        return (datetime.combine(self.first_day, time(0), tzinfo=LONDON).astimezone(UTC),
                datetime.combine(self.next_first_day, time(0), tzinfo=LONDON).astimezone(UTC))


def first_working_day(year: int, month: int, calendar: WorkingCalendar | None = None) -> date:
    """The month's first working day in England and Wales (weekends and bank holidays skipped):
    the board's day. Prefect's cron cannot say it, so the deployment runs on weekday mornings of
    days 1-7 and the flow asks this."""
    return (calendar or england_and_wales()).next_working_day(date(year, month, 1))


def is_board_day(day: date, calendar: WorkingCalendar | None = None) -> bool:
    return day == first_working_day(day.year, day.month, calendar)


@dataclass
class PackFigures:
    """The pack, as stored (JSON) and shown. Items are dicts of the register's public fields."""

    month: str
    as_of: str
    cases_referred: int = 0
    reports_filed: int = 0
    median_working_days: float | None = None
    new_items: list[dict[str, Any]] = field(default_factory=list)
    new_by_theme: dict[str, int] = field(default_factory=dict)
    new_by_unit: dict[str, int] = field(default_factory=dict)
    closed_items: list[dict[str, Any]] = field(default_factory=list)
    overdue_items: list[dict[str, Any]] = field(default_factory=list)
    individual_lessons_by_theme: dict[str, int] = field(default_factory=dict)
    action_types: dict[str, int] = field(default_factory=dict)

    @property
    def no_cases(self) -> bool:
        """Nothing was referred and no report filed in the month: the pack says so."""
        return self.cases_referred == 0 and self.reports_filed == 0

    @property
    def label(self) -> str:
        return Month.parse(self.month).label

    @property
    def discussed(self) -> list[dict[str, Any]]:
        """The items before the board, each once: new, then closed, then overdue."""
        seen: dict[int, dict[str, Any]] = {}
        for item in (*self.new_items, *self.closed_items, *self.overdue_items):
            seen.setdefault(int(item["id"]), item)
        return list(seen.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> PackFigures:
        return cls(**json.loads(text))


def _item_view(item: LearningItem) -> dict[str, Any]:
    return {"id": item.id, "reference": register.item_reference(item),
            "theme": item.theme or NO_THEME, "unit": item.unit or NO_UNIT,
            "status": item.status, "text": item.text, "owner": item.owner,
            "target_on": item.target_on.isoformat() if item.target_on else "",
            "closing_note": item.closing_note}


def _ordered(counter: Counter[str]) -> dict[str, int]:
    """Largest first, then alphabetical: the order the board reads."""
    return dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0].lower())))


def build_figures(session: Session, month: Month, as_of: date,
                  calendar: WorkingCalendar | None = None) -> PackFigures:
    """The month's figures from the record, as they are now; overdue is as of `as_of`."""
    calendar = calendar or england_and_wales()
    start, end = month.window()
    figures = PackFigures(month=month.key, as_of=as_of.isoformat())

    figures.cases_referred = int(session.exec(
        select(func.count()).select_from(Case).where(
            Case.referred_on >= month.first_day,
            Case.referred_on < month.next_first_day)
    ).one())

    filed = session.exec(
        select(Report, Case).join(Case, Case.id == Report.case_id)  # type: ignore[arg-type]
        .where(col(Report.sent_to_aa_at) >= start, col(Report.sent_to_aa_at) < end)
        .order_by(col(Report.id))).all()
    figures.reports_filed = len(filed)
    days = [calendar.working_days_between(case.referred_on,
                                          as_utc(report.sent_to_aa_at).astimezone(LONDON).date())
            for report, case in filed if report.sent_to_aa_at is not None]
    figures.median_working_days = float(statistics.median(days)) if days else None
    # An individual's lesson has one theme: its case's behaviour (the allegation category).
    individual: Counter[str] = Counter()
    for report, case in filed:
        individual[case.allegation_category.strip() or NO_THEME] += len(
            register.lessons(report.officer_lessons))
    figures.individual_lessons_by_theme = _ordered(+individual)
    case_ids = [case.id for _, case in filed]
    actions = session.exec(select(Action).where(col(Action.case_id).in_(case_ids))).all() \
        if case_ids else []
    figures.action_types = _ordered(Counter(a.type.label for a in actions))

    new = session.exec(select(LearningItem).where(
        col(LearningItem.created_at) >= start, col(LearningItem.created_at) < end)
        .order_by(col(LearningItem.id))).all()
    figures.new_items = [_item_view(i) for i in new]
    figures.new_by_theme = _ordered(Counter(i.theme or NO_THEME for i in new))
    figures.new_by_unit = _ordered(Counter(i.unit or NO_UNIT for i in new))

    closed_ids = session.exec(select(LearningItemEvent.item_id).where(
        col(LearningItemEvent.action).in_(CLOSING),
        col(LearningItemEvent.at) >= start, col(LearningItemEvent.at) < end).distinct()).all()
    closed = session.exec(select(LearningItem).where(col(LearningItem.id).in_(closed_ids))
                          .order_by(col(LearningItem.id))).all() if closed_ids else []
    figures.closed_items = [_item_view(i) for i in closed]
    figures.overdue_items = [_item_view(i) for i in register.overdue(session, as_of)]
    return figures


def pack_of(session: Session, month: Month) -> LearningBoardPack | None:
    return session.exec(select(LearningBoardPack)
                        .where(LearningBoardPack.month == month.key)).first()


def prepare(session: Session, month: Month, as_of: date, now: datetime
            ) -> tuple[LearningBoardPack, bool]:
    """The month's pack: the stored one, or built now and stored. True when built by this call.
    Built once: the figures the board was sent are the figures its page shows."""
    pack = pack_of(session, month)
    if pack is not None:
        return pack, False
    figures = build_figures(session, month, as_of)
    pack = LearningBoardPack(month=month.key, as_of=as_of, figures=figures.to_json(),
                             built_at=as_utc(now))
    try:
        # A savepoint: a run that loses a race with another for the month keeps the winner's.
        with session.begin_nested():
            session.add(pack)
    except IntegrityError:
        kept = pack_of(session, month)
        if kept is None:
            raise
        return kept, False
    return pack, True


def figures_of(pack: LearningBoardPack) -> PackFigures:
    return PackFigures.from_json(pack.figures)


def packs(session: Session) -> list[LearningBoardPack]:
    """Every pack, newest month first."""
    return list(session.exec(select(LearningBoardPack)
                             .order_by(col(LearningBoardPack.month).desc())))


def members() -> list[str]:
    """The board's members (RPRP_LEARNING_BOARD_MEMBERS), each once, lower case."""
    seen: list[str] = []
    for part in get_settings().learning_board_members.split(","):
        address = part.strip().lower()
        if address and address not in seen:
            seen.append(address)
    return seen


def pack_link(month: Month) -> str:
    return f"{get_settings().public_portal_url}/learning/board/{month.key}"


def email_context(pack: LearningBoardPack) -> dict[str, Any]:
    """The email's figures: counts and themes only, never an item's text or owner."""
    f = figures_of(pack)
    median = ("none filed" if f.median_working_days is None
              else f"{f.median_working_days:g} working days")
    return {
        "case": {"reference": f"Learning board {f.month}", "rprp_reason": "",
                 "allegation_category": "", "public_summary": ""},
        "officer": None,
        "month_text": f.label, "pack_link": pack_link(Month.parse(f.month)),
        "no_cases": f.no_cases, "cases_referred": f.cases_referred,
        "reports_filed": f.reports_filed, "median_text": median,
        "new_count": len(f.new_items), "closed_count": len(f.closed_items),
        "overdue_count": len(f.overdue_items),
        "themes": list(f.new_by_theme.items()),
    }


def queue_emails(session: Session, pack: LearningBoardPack) -> int:
    """One email to each member for the month, exactly once (the key is the month and the
    member): a second run, or a replay, queues nothing. Returns how many this call queued."""
    queued = 0
    for member in members():
        if outbox.enqueue(session, key=f"learning-board:{pack.month}:{member}", kind=EMAIL_KIND,
                          recipient=member, context=email_context(pack)):
            queued += 1
    return queued


def _action(month: str) -> str:
    return f"board {month}:"


def record_decision(session: Session, month: Month, item_id: int, actor: str, now: datetime,
                    decision: str, note: str) -> LearningItemEvent:
    """The board's decision on an item of the month's pack, in the item's history. A decision
    other than agreed needs its note; closing a live item also closes it in the register (done,
    the note its closing note). Everything is checked first: a refusal saves nothing."""
    pack = pack_of(session, month)
    if pack is None:
        raise BoardRefused(f"There is no board pack for {month.label}")
    if item_id not in {int(i["id"]) for i in figures_of(pack).discussed}:
        raise BoardRefused("That item is not in this month's pack")
    try:
        chosen = BoardDecision(decision.strip())
    except ValueError:
        raise BoardRefused(f"Choose the board's decision: "
                           f"{', '.join(d.value for d in BoardDecision)}") from None
    note = note.strip()
    if chosen is not BoardDecision.AGREED and len(note) < 5:
        raise BoardRefused(f"Write the board's note on why the item is {chosen.value}")
    try:
        item, origin = register.item_and_origin(session, item_id)  # a case's, or a meeting's
    except register.LearningRefused as refused:
        raise BoardRefused(str(refused)) from None
    found = register.names_in(session, origin, note)
    if found:
        raise BoardRefused(f"The register must not identify the officer or the complainant: "
                           f"remove {', '.join(f'“{w}”' for w in found)} and save again")
    if chosen is BoardDecision.CLOSED and item.status in register.LIVE:
        try:
            register.change_status(session, item_id, actor, now,
                                   register.LearningStatus.DONE.value, note)
        except register.LearningRefused as refused:
            raise BoardRefused(str(refused)) from None
    event = LearningItemEvent(item_id=item_id, at=as_utc(now), actor=actor,
                              action=f"{_action(month.key)} {chosen.value}", detail=note)
    session.add(event)
    session.flush()
    return event


def decisions(session: Session, month: Month) -> dict[int, list[LearningItemEvent]]:
    """The board's decisions of the month, by item, oldest first."""
    rows = session.exec(select(LearningItemEvent)
                        .where(col(LearningItemEvent.action).startswith(_action(month.key)))
                        .order_by(col(LearningItemEvent.id))).all()
    found: dict[int, list[LearningItemEvent]] = {}
    for row in rows:
        found.setdefault(row.item_id, []).append(row)
    return found


def decision_of(event: LearningItemEvent) -> str:
    """`board 2034-03: deferred` -> `deferred`."""
    return event.action.split(":", 1)[1].strip()
