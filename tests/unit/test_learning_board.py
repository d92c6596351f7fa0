"""The monthly learning board against the case DB alone: every figure of the pack for a seeded
month (tests/support/board.py works each out by hand), a month with no cases, the pack kept once,
the board's first working day, the members' emails once per month and member, and the board's
decisions recorded in the items' history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import yaml
from prefect.server.schemas.schedules import CronSchedule
from sqlmodel import select

from infra.db import session_scope
from infra.settings import PROJECT_ROOT, reset_settings
from models import Outbox
from models.learning import LearningItem
from tasks import learning_board as board
from tasks import learning_register as register
from tasks.calendar import LONDON
from tasks.learning_board import BoardRefused, Month
from tests.support.board import OFFICER_NAME, SeededMonth, seed_board_month

MARCH = Month(2034, 3)
BOARD_DAY = date(2034, 4, 3)
NOW = datetime(2034, 4, 3, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded() -> SeededMonth:
    return seed_board_month()


@pytest.fixture
def members(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setenv("RPRP_LEARNING_BOARD_MEMBERS",
                       "Chair@Force.example, dci.board@force.example,chair@force.example")
    reset_settings()
    yield ["chair@force.example", "dci.board@force.example"]
    monkeypatch.delenv("RPRP_LEARNING_BOARD_MEMBERS")
    reset_settings()


def ids(items: list[dict[str, object]], seeded: SeededMonth) -> list[str]:
    """The seeded items' keys among `items`, in order: other tests' items are not ours."""
    by_id = {v: k for k, v in seeded.items.items()}
    return [by_id[int(str(i["id"]))] for i in items if int(str(i["id"])) in by_id]


def test_the_pack_figures_are_those_worked_out_by_hand(seeded: SeededMonth) -> None:
    with session_scope() as session:
        f = board.build_figures(session, MARCH, BOARD_DAY)
    assert f.month == "2034-03" and f.as_of == "2034-04-03"
    assert f.cases_referred == 3
    assert f.reports_filed == 2
    assert f.median_working_days == 19.5
    assert f.individual_lessons_by_theme == {"Incivility": 3}
    assert f.action_types == {"Training, a learning plan or a PDR entry": 2,
                              "Management meeting or mediation": 1}
    # Every item new in March is one of ours (no other test writes in 2034).
    assert [i["id"] for i in f.new_items] == [seeded.items[k] for k in ("I1", "I2", "I3")]
    assert f.new_by_theme == {"supervision": 2, "use of body-worn video": 1}
    assert f.new_by_unit == {"Response North": 2, "Response South": 1}
    assert [i["id"] for i in f.closed_items] == [seeded.items[k] for k in ("I2", "I6")]
    assert ids(f.overdue_items, seeded) == ["I1", "I5"]
    assert not f.no_cases
    # The board discusses each item once: new, closed, then overdue.
    assert ids(f.discussed, seeded) == ["I1", "I2", "I3", "I6", "I5"]


def test_the_pack_names_no_case_officer_or_complainant(seeded: SeededMonth) -> None:
    with session_scope() as session:
        f = board.build_figures(session, MARCH, BOARD_DAY)
    text = f.to_json()
    assert "RPRP-" not in text and OFFICER_NAME.split()[1] not in text
    assert "case_id" not in text and "Pennyworth" not in text


def test_a_month_with_no_cases_gives_a_pack_that_says_so() -> None:
    with session_scope() as session:
        f = board.build_figures(session, Month(2035, 8), date(2035, 9, 3))
    assert f.no_cases
    assert (f.cases_referred, f.reports_filed, f.median_working_days) == (0, 0, None)
    assert f.new_items == [] and f.closed_items == [] and f.action_types == {}
    assert f.individual_lessons_by_theme == {} and f.new_by_theme == {}


def test_the_pack_is_kept_once_and_the_page_shows_what_was_built(seeded: SeededMonth) -> None:
    with session_scope() as session:
        pack, built = board.prepare(session, MARCH, BOARD_DAY, NOW)
        assert built or pack.as_of == BOARD_DAY
        kept = pack.figures
    with session_scope() as session:
        # A new item dated in March after the pack was built changes nothing kept.
        later = session.get(LearningItem, seeded.items["I1"])
        assert later is not None
        again, built_again = board.prepare(session, MARCH, date(2034, 4, 20), NOW)
        assert not built_again and again.figures == kept
        assert board.figures_of(again).reports_filed == 2
        assert MARCH.key in [p.month for p in board.packs(session)]


def test_a_run_that_loses_the_race_for_a_month_keeps_the_other_runs_pack(
        seeded: SeededMonth, monkeypatch: pytest.MonkeyPatch) -> None:
    month = Month(2034, 4)
    with session_scope() as session:
        first, built = board.prepare(session, month, date(2034, 5, 1), NOW)
        assert built
        kept = first.figures
    real = board.pack_of
    calls = []

    def not_yet(session: object, chosen: Month) -> object:
        calls.append(chosen)
        return None if len(calls) == 1 else real(session, chosen)  # type: ignore[arg-type]

    monkeypatch.setattr(board, "pack_of", not_yet)
    with session_scope() as session:
        second, built = board.prepare(session, month, date(2034, 5, 2), NOW)
        assert not built and second.figures == kept and second.as_of == date(2034, 5, 1)


@pytest.mark.parametrize(("year", "month", "first"), [
    (2027, 1, date(2027, 1, 4)),   # Fri 1 Jan is New Year's Day; then a weekend
    (2034, 4, date(2034, 4, 3)),   # Sat 1 Apr
    (2027, 3, date(2027, 3, 1)),   # a Monday
    (2026, 6, date(2026, 6, 1)),   # a Monday
    (2022, 1, date(2022, 1, 4)),   # Sat 1 Jan; New Year's Day moved to Mon 3 Jan
    (2027, 5, date(2027, 5, 4)),   # Sat 1 May; Mon 3 May the early May bank holiday
])
def test_the_board_meets_on_the_months_first_working_day(year: int, month: int,
                                                          first: date) -> None:
    assert board.first_working_day(year, month) == first
    assert board.is_board_day(first)
    assert not board.is_board_day(date(year, month, 1)) or first.day == 1
    assert not board.is_board_day(date(first.year, first.month, first.day + 1))


async def test_the_schedule_runs_on_every_months_first_working_day() -> None:
    """prefect.yaml's cron, as Prefect's scheduler reads it: weekdays of days 1-7 (day_or is
    false, so not "days 1-7 or any weekday"), which always include the first working day."""
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    (deployment,) = [d for d in config["deployments"] if d["name"] == "rprp-learning-board"]
    (spec,) = deployment["schedules"]
    schedule = CronSchedule(cron=spec["cron"], timezone=spec["timezone"], day_or=spec["day_or"])
    runs = await schedule.get_dates(start=datetime(2026, 12, 1, tzinfo=UTC),
                                    end=datetime(2031, 12, 31, tzinfo=UTC))
    days = [r.astimezone(LONDON) for r in runs]
    assert all(d.day <= 7 and d.weekday() < 5 and (d.hour, d.minute) == (7, 30) for d in days)
    board_days = {d.date() for d in days if board.is_board_day(d.date())}
    expected = {board.first_working_day(y, m) for y in range(2027, 2032) for m in range(1, 13)}
    assert expected <= board_days
    assert len(board_days) == len(expected) + 1  # and December 2026's


def test_the_month_reviewed_is_the_one_before_and_a_bad_month_is_refused() -> None:
    assert Month.before(date(2027, 1, 4)) == Month(2026, 12)
    assert Month.before(date(2034, 4, 3)).key == "2034-03"
    assert Month.parse("2034-03").label == "March 2034"
    for bad in ("2034-13", "34-03", "march", "2034-3"):
        with pytest.raises(BoardRefused, match="YYYY-MM"):
            Month.parse(bad)


def test_members_are_emailed_once_per_month_and_member(seeded: SeededMonth,
                                                       members: list[str]) -> None:
    month = Month(2034, 2)  # February's pack, kept apart from March's
    with session_scope() as session:
        pack, _ = board.prepare(session, month, date(2034, 3, 1), NOW)
        assert board.members() == members
        assert board.queue_emails(session, pack) == 2
    with session_scope() as session:
        pack, built = board.prepare(session, month, date(2034, 3, 1), NOW)
        assert not built
        assert board.queue_emails(session, pack) == 0
        rows = session.exec(select(Outbox).where(
            Outbox.key.startswith("learning-board:2034-02:"))).all()  # type: ignore[attr-defined]
    assert sorted(r.recipient for r in rows) == members
    body = rows[0].body_text
    assert "February 2034" in rows[0].subject
    assert "/learning/board/2034-02" in body
    assert "Cases referred: 2" in body  # B on 20 and F on 28 February
    # Figures only: no item's text, owner, case or officer.
    assert "Seeded lesson" not in body and "insp." not in body
    assert "RPRP-" not in body and OFFICER_NAME not in body


def test_no_members_means_no_email(seeded: SeededMonth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPRP_LEARNING_BOARD_MEMBERS", "")
    reset_settings()
    try:
        with session_scope() as session:
            pack, _ = board.prepare(session, Month(2034, 1), date(2034, 2, 1), NOW)
            assert board.queue_emails(session, pack) == 0
    finally:
        reset_settings()


def test_the_boards_decisions_go_into_the_items_history(seeded: SeededMonth) -> None:
    with session_scope() as session:
        board.prepare(session, MARCH, BOARD_DAY, NOW)
    i1 = seeded.items["I1"]
    with session_scope() as session:
        board.record_decision(session, MARCH, i1, "psd@force.example", NOW, "agreed", "")
        board.record_decision(session, MARCH, i1, "psd@force.example", NOW, "deferred",
                              "Back next month with the rota.")
    with session_scope() as session:
        found = board.decisions(session, MARCH)
        assert [board.decision_of(e) for e in found[i1]][-2:] == ["agreed", "deferred"]
        history = register.history(session, i1)
        assert history[-1].action == "board 2034-03: deferred"
        assert history[-1].detail == "Back next month with the rota."
        item = session.get(LearningItem, i1)
        assert item is not None and item.status == "open"  # deferring changes nothing else


def test_closing_at_the_board_closes_the_item(seeded: SeededMonth) -> None:
    with session_scope() as session:
        board.prepare(session, MARCH, BOARD_DAY, NOW)
    i3 = seeded.items["I3"]  # closed in April: March's figures stay as they were
    with session_scope() as session:
        board.record_decision(session, MARCH, i3, "psd@force.example", NOW, "closed",
                              "Video checks are now in the shift briefing.")
    with session_scope() as session:
        item = session.get(LearningItem, i3)
        assert item is not None
        assert item.status == "done"
        assert item.closing_note == "Video checks are now in the shift briefing."
        actions = [e.action for e in register.history(session, i3)]
        assert actions[-2:] == ["status: done", "board 2034-03: closed"]


@pytest.mark.parametrize(("decision", "note", "message"), [
    ("shelved", "A note that is long enough", "Choose the board's decision"),
    ("deferred", "", "Write the board's note"),
    ("action changed", "Ask Quillfeather to lead it", "remove “Quillfeather”"),
])
def test_a_bad_decision_is_refused_and_nothing_is_saved(seeded: SeededMonth, decision: str,
                                                        note: str, message: str) -> None:
    i1 = seeded.items["I1"]
    with session_scope() as session:
        board.prepare(session, MARCH, BOARD_DAY, NOW)
        before = len(register.history(session, i1))
    with session_scope() as session, pytest.raises(BoardRefused, match=message):
        board.record_decision(session, MARCH, i1, "psd@force.example", NOW, decision, note)
    with session_scope() as session:
        assert len(register.history(session, i1)) == before


def test_only_an_item_of_the_pack_takes_a_decision(seeded: SeededMonth) -> None:
    with session_scope() as session:
        board.prepare(session, MARCH, BOARD_DAY, NOW)
        with pytest.raises(BoardRefused, match="not in this month's pack"):
            board.record_decision(session, MARCH, seeded.items["I4"], "psd@force.example", NOW,
                                  "agreed", "")
        with pytest.raises(BoardRefused, match="no board pack"):
            board.record_decision(session, Month(2041, 1), seeded.items["I1"],
                                  "psd@force.example", NOW, "agreed", "")
