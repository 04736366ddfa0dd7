from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.jobs import (
    DEFAULT_BACKOFF,
    Backoff,
    Job,
    JobState,
    backoff_delay,
    error_text,
    next_attempt_at,
)

NOW = datetime(2026, 11, 24, tzinfo=UTC)

policies = st.builds(
    Backoff,
    first=st.floats(min_value=0.001, max_value=100),
    factor=st.floats(min_value=1, max_value=10),
    cap=st.floats(min_value=100, max_value=1e7),
    jitter=st.floats(min_value=0, max_value=0.99),
)
failures = st.integers(min_value=1, max_value=10_000)
rands = st.floats(min_value=0, max_value=1, exclude_max=True)


def raw(n: int, policy: Backoff) -> float:
    """The un-jittered delay, computed the slow, obvious way (no overflow: ints)."""
    if policy.factor == 1:
        return min(policy.cap, policy.first)
    delay = policy.first
    for _ in range(n - 1):
        delay *= policy.factor
        if delay >= policy.cap:
            return policy.cap
    return delay


def le(a: float, b: float) -> bool:
    """a <= b up to float rounding and timedelta's microseconds."""
    return a <= b * (1 + 1e-9) + 1e-6


@given(policies, failures, rands)
def test_delay_is_the_exponential_shortened_by_at_most_the_jitter(
    policy: Backoff, n: int, rand: float
) -> None:
    delay = backoff_delay(n, policy, rand).total_seconds()
    expected = raw(n, policy)
    assert le(expected * (1 - policy.jitter), delay)
    assert le(delay, expected)
    assert delay > 0 and le(delay, policy.cap)


@given(policies, failures, rands, rands)
def test_bounds_never_shrink_as_failures_grow(
    policy: Backoff, n: int, rand_a: float, rand_b: float
) -> None:
    # The jitter-free ceiling and the full-jitter floor both grow with n (up to the cap).
    assert backoff_delay(n, policy, 0) <= backoff_delay(n + 1, policy, 0)
    assert backoff_delay(n, policy, 0.999) <= backoff_delay(n + 1, policy, 0.999)
    # Any draw at n+1 is at least the floor at n.
    floor_n = raw(n, policy) * (1 - policy.jitter)
    assert le(floor_n, backoff_delay(n + 1, policy, rand_b).total_seconds())
    assert le(backoff_delay(n, policy, rand_a).total_seconds(), raw(n + 1, policy))


def test_known_values_of_the_default_policy() -> None:
    delays = [backoff_delay(n, DEFAULT_BACKOFF, 0).total_seconds() for n in range(1, 12)]
    assert delays == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert backoff_delay(3, DEFAULT_BACKOFF, 0.5) == timedelta(seconds=20 * (1 - 0.25 * 0.5))


def test_a_real_random_spreads_retries() -> None:
    rng = random.Random(7)
    draws = {backoff_delay(4, DEFAULT_BACKOFF, rng.random()) for _ in range(20)}
    assert len(draws) == 20
    assert all(timedelta(seconds=30) <= d <= timedelta(seconds=40) for d in draws)


@pytest.mark.parametrize(("n", "rand"), [(0, 0.5), (-1, 0.5), (1, 1.0), (1, -0.1)])
def test_bad_arguments_are_refused(n: int, rand: float) -> None:
    with pytest.raises(ValueError, match=r"failures|rand"):
        backoff_delay(n, DEFAULT_BACKOFF, rand)


@pytest.mark.parametrize(
    "kwargs",
    [{"first": 0}, {"first": 10, "cap": 5}, {"factor": 0.5}, {"jitter": 1}, {"jitter": -0.1}],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="need"):
        Backoff(**kwargs)


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=50), rands)
def test_next_attempt_until_attempts_run_out(attempts: int, max_attempts: int, rand: float) -> None:
    at = next_attempt_at(
        attempts=attempts, max_attempts=max_attempts, now=NOW, policy=DEFAULT_BACKOFF, rand=rand
    )
    if attempts >= max_attempts:
        assert at is None
    else:
        assert at == NOW + backoff_delay(attempts, DEFAULT_BACKOFF, rand)


def job(**changes: object) -> Job:
    values: dict[str, object] = {
        "id": "job_1",
        "kind": "k",
        "payload": {},
        "run_at": NOW,
        "attempts": 0,
        "max_attempts": 3,
        "created_at": NOW,
    }
    values.update(changes)
    return Job(**values)  # type: ignore[arg-type]


def test_state_follows_lease_and_death() -> None:
    assert job().state is JobState.PENDING
    assert job(lease_owner="w", attempts=1).state is JobState.RUNNING
    assert job(dead_at=NOW, attempts=3).state is JobState.DEAD
    assert job(attempts=1).attempts_left == 2
    assert job(attempts=5).attempts_left == 0


def test_error_text_is_one_bounded_line() -> None:
    assert error_text(ValueError("bad\n  value")) == "ValueError: bad value"
    assert error_text(TimeoutError()) == "TimeoutError"
    long = error_text(RuntimeError("x" * 5000), limit=100)
    assert len(long) == 100 and long.startswith("RuntimeError: xxx") and long.endswith("…")
