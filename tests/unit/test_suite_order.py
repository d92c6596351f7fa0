"""The suite's own order: the long files go first even when pytest-xdist spreads the files over
processes (tests/conftest.py), so that no process is left running one long file at the end."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests import conftest


def config(dist: str) -> Any:
    return SimpleNamespace(option=SimpleNamespace(dist=dist, loadscopereorder=True))


@pytest.mark.parametrize("dist", ["loadfile", "loadscope"])
def test_xdist_does_not_re_sort_the_files_by_their_number_of_tests(dist: str) -> None:
    spread = config(dist)
    conftest.pytest_configure(spread)
    assert spread.option.loadscopereorder is False


def test_other_ways_of_running_are_left_alone() -> None:
    for dist in ("no", "load", "worksteal"):
        other = config(dist)
        conftest.pytest_configure(other)
        assert other.option.loadscopereorder is True


def test_this_run_keeps_the_order(request: pytest.FixtureRequest) -> None:
    option = request.config.option
    if getattr(option, "dist", "no") in ("loadfile", "loadscope"):
        assert option.loadscopereorder is False
