"""The garbage collector's pace during a run: raised for the run, given back after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connector_core.collector import RUN_THRESHOLD, run_pace


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
def test_a_run_collects_less_often_and_gives_the_thresholds_back() -> None:
    gc.set_threshold(700, 10, 10)
    with run_pace():
        assert gc.get_threshold() == (RUN_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("thresholds")
def test_thresholds_come_back_when_the_run_raises() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), run_pace():
        raise RuntimeError
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("thresholds")
@pytest.mark.parametrize("young", [0, RUN_THRESHOLD * 2])
def test_a_host_that_disabled_or_slowed_collection_keeps_its_choice(young: int) -> None:
    gc.set_threshold(young, 10, 10)
    with run_pace():
        assert gc.get_threshold() == (young, 10, 10)
