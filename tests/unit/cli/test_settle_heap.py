"""cli.common.settle_heap: what a long-running process has loaded leaves the collector's
sight; its start-up garbage does not stay."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from wafile.cli.common import settle_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test process's heap back in the collector's sight after the test."""
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
def test_what_is_alive_is_frozen_and_start_up_garbage_is_collected() -> None:
    kept = _Node()
    dropped = _Node()
    gone = weakref.ref(dropped)
    del dropped
    settle_heap()
    assert gone() is None  # collected before the freeze, not frozen for ever
    assert gc.get_freeze_count() > 1_000  # the imported modules, classes, tests…
    # `kept` is no longer in any generation the collector walks.
    assert not any(obj is kept for obj in gc.get_objects())
