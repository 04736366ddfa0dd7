from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.message_codec import event_from_json, event_to_json
from wafile.core.message_state import (
    Accepted,
    AttemptStatus,
    DeadlineReached,
    Event,
    SendFailed,
    SendSucceeded,
    StatusReport,
)
from wafile.core.provider_errors import Disposition

times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
attempts = st.integers(0, 5)
texts = st.text(max_size=50)
events: st.SearchStrategy[Event] = st.one_of(
    st.builds(Accepted, at=times),
    st.builds(SendSucceeded, at=times, attempt=attempts, provider_id=texts),
    st.builds(
        SendFailed,
        at=times,
        attempt=attempts,
        disposition=st.sampled_from(Disposition),
        code=st.none() | st.integers(0, 10**6),
        reason=texts,
    ),
    st.builds(
        StatusReport,
        at=times,
        attempt=attempts,
        status=st.sampled_from(
            [AttemptStatus.SENT, AttemptStatus.DELIVERED, AttemptStatus.READ, AttemptStatus.FAILED]
        ),
        provider_code=st.none() | st.integers(0, 10**6),
        reason=st.none() | texts,
        disposition=st.none() | st.sampled_from(Disposition),
    ),
    st.builds(DeadlineReached, at=times, attempt=attempts),
)


@given(events)
def test_every_event_survives_the_round_trip(event: Event) -> None:
    assert event_from_json(event_to_json(event)) == event


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        event_from_json({"kind": "teleported", "at": "2026-11-23T00:00:00+00:00"})
