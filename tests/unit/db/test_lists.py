"""`padded`: bind lists of any length share a few statement texts, selecting the same."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wafile.db.lists import padded


@given(st.lists(st.integers(), max_size=200))
def test_padded_keeps_the_values_and_rounds_the_length_up_to_a_power_of_two(
    values: list[int],
) -> None:
    got = padded(values)
    assert got[: len(values)] == values
    assert set(got) == set(values)
    if len(values) >= 2:
        assert len(got) & (len(got) - 1) == 0 and len(values) <= len(got) < 2 * len(values)
    else:
        assert got == values


def test_batches_of_one_to_sixty_four_make_seven_lengths() -> None:
    assert {len(padded(range(n))) for n in range(1, 65)} == {1, 2, 4, 8, 16, 32, 64}
