"""Bind lists sized so that statements of any batch size share a few texts."""

from __future__ import annotations

from collections.abc import Collection
from typing import TypeVar

__all__ = ["padded"]

T = TypeVar("T")


def padded(values: Collection[T]) -> list[T]:
    """`values` as a list whose length is a power of two, the last value repeated.

    An `IN` list of N values is N bind parameters, so each N makes a statement text of
    its own, and asyncpg prepares each text once per connection (a round trip, and a
    place in a cache of 100 statements), which batches of every size from 1 to 64 kept
    churning. Padded, they share seven texts. A value repeated in an `IN` list selects
    nothing more.
    """
    items = list(values)
    if len(items) < 2:
        return items
    size = 1 << (len(items) - 1).bit_length()
    return items + [items[-1]] * (size - len(items))
