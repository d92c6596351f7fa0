"""The organisational learning register's rules (reg 70(2)(e), 70(4)): the lessons for line
management or the force in a filed report become learning items, which PSD (the appropriate
authority) assigns and reviews and their owners update.

Pure rules: each function takes the caller's `Session` and `now`; nothing here talks to Prefect.
The register must not identify anyone: text is checked at entry for the officer's and the
complainant's names (a refusal names the words to remove, and nothing is saved); the text copied
from a report has those words replaced, since the filing cannot be refused for them.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from infra.settings import get_settings
from models import Case, Officer, Report, as_utc
from models.learning import MULTI_AGENCY, LearningItem, LearningItemEvent
from models.meetings import Meeting
from tasks import meetings
from tasks.identifiers import collar_parts, name_parts

SOURCE = "force_lessons"  # the report's field (reg 70(2)(e)) the items come from
REDACTED = "[name removed]"
DEFAULT_THEMES: tuple[str, ...] = (
    "communication with the public",
    "use of body-worn video",
    "supervision",
    "training gap",
    "policy unclear",
    "systems and equipment",
    "welfare",
    "positive practice to share",
)
# A report's "lessons for the force" that says there are none makes no item.
NO_LESSON = re.compile(r"^(none|nil|n/?a|no(ne)? identified|nothing|no lessons?( identified)?)"
                       r"[.!]?$", re.IGNORECASE)
BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


class LearningStatus(StrEnum):
    OPEN = "open"
    ACTION_PLANNED = "action planned"
    DONE = "done"
    NOT_ACCEPTED = "not accepted"


# Where an item may go from each status; reopening a closed item needs a reason like the rest.
MOVES: dict[LearningStatus, frozenset[LearningStatus]] = {
    LearningStatus.OPEN: frozenset({LearningStatus.ACTION_PLANNED, LearningStatus.DONE,
                                    LearningStatus.NOT_ACCEPTED}),
    LearningStatus.ACTION_PLANNED: frozenset({LearningStatus.OPEN, LearningStatus.DONE,
                                              LearningStatus.NOT_ACCEPTED}),
    LearningStatus.DONE: frozenset({LearningStatus.OPEN}),
    LearningStatus.NOT_ACCEPTED: frozenset({LearningStatus.OPEN}),
}
LIVE = (LearningStatus.OPEN.value, LearningStatus.ACTION_PLANNED.value)


class LearningRefused(ValueError):
    """A change to the register that breaks a rule: nothing was saved."""


def themes() -> tuple[str, ...]:
    """The controlled vocabulary: the default list, then the force's own (RPRP_LEARNING_THEMES_
    EXTRA, comma-separated), without repeats."""
    extra = [t.strip() for t in get_settings().learning_themes_extra.split(",") if t.strip()]
    seen: list[str] = []
    for theme in (*DEFAULT_THEMES, *extra):
        if theme.lower() not in (s.lower() for s in seen):
            seen.append(theme)
    return tuple(seen)


def lessons(text: str) -> list[str]:
    """A report field's lessons, one each: paragraphs, or bullet/numbered lines."""
    text = text.replace("\r\n", "\n").strip()
    if not text or NO_LESSON.match(text):
        return []
    lines = text.split("\n")
    if sum(bool(BULLET.match(line)) for line in lines) >= 2:
        parts, current = [], ""
        for line in lines:
            if BULLET.match(line):
                if current.strip():
                    parts.append(current.strip())
                current = BULLET.sub("", line)
            else:
                current += " " + line.strip()
        parts.append(current.strip())
    else:
        parts = [p.strip() for p in re.split(r"\n\s*\n", text)]
    return [" ".join(p.split()) for p in parts if p.strip() and not NO_LESSON.match(p.strip())]


def identifying_words(session: Session, case: Case | Meeting) -> list[str]:
    """What identifies the officer or the complainant: each name's words, the full names, the
    collar number (and its digits); for a meeting's item, every name recorded in the meeting
    (the child, the family, the professionals)."""
    if isinstance(case, Meeting):
        words = [part for _, name in meetings.names_recorded(session, case)
                 for part in name_parts(name, min_length=2)]
        return sorted(set(words), key=lambda w: (-len(w), w.lower()))
    officer = session.get(Officer, case.officer_id) if getattr(case, "officer_id", None) else None
    words = name_parts(officer.name if officer else "", min_length=2)
    words += name_parts(case.complainant_name, min_length=2)
    if officer is not None:
        words += collar_parts(officer.collar_number)
    return sorted(set(words), key=lambda w: (-len(w), w.lower()))


def _pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def names_in(session: Session, case: Case | Meeting, text: str) -> list[str]:
    """The identifying words found in `text`, as written there and in its order; words next to
    each other are one ("Alex Officer"), so the refusal says what to remove as the writer sees it."""
    spans = sorted((m.start(), m.end()) for word in identifying_words(session, case)
                   for m in _pattern(word).finditer(text))
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and (start <= merged[-1][1] or not text[merged[-1][1]:start].strip()):
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    found: list[str] = []
    for start, end in merged:
        if text[start:end].lower() not in (f.lower() for f in found):
            found.append(text[start:end])
    return found


def check_text(session: Session, case: Case | Meeting, text: str) -> str:
    """The item's text, stripped, or a refusal that names the words to remove."""
    text = text.strip()
    if len(text) < 10:
        raise LearningRefused("Write the lesson (at least 10 characters)")
    found = names_in(session, case, text)
    if found:
        listed = ", ".join(f"“{w}”" for w in found)
        raise LearningRefused(f"The register must not identify the officer or the complainant: "
                              f"remove {listed} and save again")
    return text


def redact(session: Session, case: Case | Meeting, text: str) -> tuple[str, int]:
    """`text` with identifying words replaced, and how many were replaced."""
    count = 0
    for word in identifying_words(session, case):
        text, n = _pattern(word).subn(REDACTED, text)
        count += n
    return text, count


def _event(session: Session, item: LearningItem, actor: str, action: str, detail: str,
           now: datetime) -> None:
    assert item.id is not None
    session.add(LearningItemEvent(item_id=item.id, at=as_utc(now), actor=actor, action=action,
                                  detail=detail))


def items_of_case(session: Session, case_id: int) -> list[LearningItem]:
    return list(session.exec(select(LearningItem).where(LearningItem.case_id == case_id)
                             .order_by(LearningItem.part)))  # type: ignore[arg-type]


def create_from_report(session: Session, case: Case, report: Report, now: datetime
                       ) -> list[LearningItem]:
    """One item per lesson in the report's lessons for the force, exactly once: a replay of the
    filing (or a second filing of the same case) finds the items and adds none. Returns the items
    this call created."""
    assert case.id is not None
    existing = {(i.source, i.part) for i in items_of_case(session, case.id)}
    created: list[LearningItem] = []
    for part, lesson in enumerate(lessons(report.force_lessons), start=1):
        if (SOURCE, part) in existing:
            continue
        text, removed = redact(session, case, lesson)
        item = LearningItem(case_id=case.id, source=SOURCE, part=part, text=text,
                            created_at=as_utc(now), updated_at=as_utc(now))
        session.add(item)
        session.flush()
        detail = f"from the report's lessons for the force, lesson {part}"
        if removed:
            detail += f"; {removed} identifying words replaced with {REDACTED}"
        _event(session, item, report.submitted_by, "created", detail, now)
        created.append(item)
    return created


MEETING_SOURCE = "rpm_learning"  # a meeting's learning to be shared (its CRC summary)


def items_of_meeting(session: Session, meeting_id: int) -> list[LearningItem]:
    return list(session.exec(select(LearningItem).where(LearningItem.meeting_id == meeting_id)
                             .order_by(col(LearningItem.part))))


def create_from_meeting(session: Session, meeting: Meeting, now: datetime,
                        actor: str = "system") -> list[LearningItem]:
    """When the Case Review Committee has considered a meeting, its organisational learning
    points (the summary's learning to be shared, one item per point) join the register tagged
    multi-agency, exactly once across replays; any name recorded in the meeting is replaced
    (the summary refused them already). Returns the items this call created."""
    assert meeting.id is not None
    summary = meetings.crc_summary(session, meeting.id)
    if summary is None:
        return []
    existing = {(i.source, i.part) for i in items_of_meeting(session, meeting.id)}
    created: list[LearningItem] = []
    for part, lesson in enumerate(lessons(summary.learning_to_share), start=1):
        if (MEETING_SOURCE, part) in existing:
            continue
        text, removed = redact(session, meeting, lesson)
        item = LearningItem(meeting_id=meeting.id, origin=MULTI_AGENCY, source=MEETING_SOURCE,
                            part=part, text=text, created_at=as_utc(now), updated_at=as_utc(now))
        session.add(item)
        session.flush()
        detail = (f"multi-agency: from reflective practice meeting {meeting.reference}'s "
                  f"learning to be shared, point {part}")
        if removed:
            detail += f"; {removed} identifying words replaced with {REDACTED}"
        _event(session, item, actor, "created", detail, now)
        created.append(item)
    return created


def item_and_origin(session: Session, item_id: int) -> tuple[LearningItem, Case | Meeting]:
    """The item and what its names are checked against: its case, or its meeting."""
    item = session.get(LearningItem, item_id)
    if item is None:
        raise LearningRefused("There is no such learning item")
    origin = (session.get(Case, item.case_id) if item.case_id is not None
              else session.get(Meeting, item.meeting_id))
    assert origin is not None
    return item, origin


def may_update(item: LearningItem, actor: str, is_psd: bool) -> bool:
    """PSD assigns and reviews every item; an owner updates their own."""
    return is_psd or (bool(item.owner) and item.owner.lower() == actor.strip().lower())


def assign(session: Session, item_id: int, actor: str, now: datetime, *, theme: str | None = None,
           unit: str | None = None, owner: str | None = None, target_on: date | None = None,
           text: str | None = None) -> LearningItem:
    """PSD sets what the item is about and who owns it by when; the history says what changed.
    Everything is checked before anything changes, so a refusal leaves the item as it was."""
    item, case = item_and_origin(session, item_id)
    new: dict[str, object] = {}
    if theme is not None:
        match = [t for t in themes() if t.lower() == theme.strip().lower()]
        if not match:
            raise LearningRefused(f"Choose a theme from the list: {', '.join(themes())}")
        new["theme"] = match[0]
    if unit is not None:
        found = names_in(session, case, unit)
        if found:
            raise LearningRefused(f"The unit must not identify anyone: remove "
                                  f"{', '.join(found)}")
        new["unit"] = unit.strip()
    if owner is not None:
        owner = owner.strip().lower()
        if owner and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner):
            raise LearningRefused("Give the owner's email address")
        new["owner"] = owner
    if target_on is not None:
        new["target_on"] = target_on
    if text is not None and text.strip() != item.text:
        new["text"] = check_text(session, case, text)
    changes: list[str] = []
    for name, value in new.items():
        if getattr(item, name) != value:
            setattr(item, name, value)
            shown = value.isoformat() if isinstance(value, date) else value
            changes.append("text edited" if name == "text" else f"{name}: {shown or 'none'}")
    if changes:
        item.updated_at = as_utc(now)
        session.add(item)
        _event(session, item, actor, "updated", "; ".join(changes), now)
    return item


def change_status(session: Session, item_id: int, actor: str, now: datetime, status: str,
                  reason: str) -> LearningItem:
    """Move an item on. Every move needs its reason: for done it is the closing note, for not
    accepted the reasons; planning an action needs an owner and a target date."""
    item, case = item_and_origin(session, item_id)
    try:
        to = LearningStatus(status)
    except ValueError:
        raise LearningRefused(f"Choose a status: {', '.join(s.value for s in LearningStatus)}"
                              ) from None
    current = LearningStatus(item.status)
    if to not in MOVES[current]:
        raise LearningRefused(f"An item that is {current.value} cannot become {to.value}")
    reason = reason.strip()
    if len(reason) < 5:
        what = {LearningStatus.DONE: "the closing note (what was done)",
                LearningStatus.NOT_ACCEPTED: "the reasons the lesson is not accepted"}
        raise LearningRefused(f"Write {what.get(to, 'the reason for the change')}")
    found = names_in(session, case, reason)
    if found:
        raise LearningRefused(f"The register must not identify the officer or the complainant: "
                              f"remove {', '.join(f'“{w}”' for w in found)} and save again")
    if to is LearningStatus.ACTION_PLANNED and not (item.owner and item.target_on):
        raise LearningRefused("Give the item an owner and a target date before planning its "
                              "action")
    item.status = to.value
    if to is LearningStatus.DONE:
        item.closing_note = reason
    else:
        item.status_reason = reason
        if to is LearningStatus.OPEN:
            item.closing_note = ""
    item.updated_at = as_utc(now)
    session.add(item)
    _event(session, item, actor, f"status: {to.value}", reason, now)
    return item


def history(session: Session, item_id: int) -> list[LearningItemEvent]:
    return list(session.exec(select(LearningItemEvent)
                             .where(LearningItemEvent.item_id == item_id)
                             .order_by(LearningItemEvent.id)))  # type: ignore[arg-type]


def overdue(session: Session, today: date) -> list[LearningItem]:
    """Items still open or planned, with an owner, whose target date has passed."""
    return list(session.exec(
        select(LearningItem).where(
            LearningItem.status.in_(LIVE),  # type: ignore[attr-defined]
            LearningItem.owner != "",
            LearningItem.target_on < today,  # type: ignore[operator]
        ).order_by(LearningItem.id)))  # type: ignore[arg-type]


def item_reference(item: LearningItem) -> str:
    """How the register names an item to its owner: never the case's reference."""
    return f"LI-{item.id:05d}"
