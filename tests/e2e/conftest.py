"""Fixtures of the e2e tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.processes import Process


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test started; any still running at its end is killed."""
    made: list[Process] = []
    yield made
    for proc in made:
        proc.close()
