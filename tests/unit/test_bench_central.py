"""The central record's bench figure at a tiny size, so it cannot rot: it imports the generated
cases into a case DB of its own and times the FOI export, disproportionality and trends."""

from __future__ import annotations

from pathlib import Path

from bench import central


def test_the_central_record_figure_runs_on_a_case_db_of_its_own(tmp_path: Path) -> None:
    said: list[str] = []
    out = central.run(f"sqlite:///{tmp_path / 'central.db'}", 300, 1, said.append)
    assert out["cases"] == out["added"] == 300
    assert set(out["timings"]) == {"foi", "disproportionality", "trends", "trends_one_unit",
                                   "trends_charts"}
    assert all(t["n"] == 1 and t["median"] >= 0 for t in out["timings"].values())
    assert set(out["met"]) == {"import", "foi", "disproportionality", "trends"}
    assert any("300 cases imported" in line for line in said)


def test_the_generated_history_is_a_valid_import_file() -> None:
    text = central.cases_csv(50)
    lines = text.splitlines()
    assert len(lines) == 51 and lines[0].startswith("reference,")
    assert central.cases_csv(50) == text  # the same cases every run
