"""The send rate limit's arithmetic (GCRA): the bound holds however requests interleave,
waits stay within what was allowed, refusals take nothing and are spread out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.rate_limit import (
    LATE_FLOOR,
    MAX_WAIT,
    Bucket,
    Granted,
    Refused,
    SendRate,
    fresh,
    from_micros,
    micros,
    most_at_once,
    take,
    take_all,
)

SECOND = 1_000_000
T0 = micros(datetime(2026, 11, 25, 12, tzinfo=UTC))

rates = st.builds(SendRate, mps=st.integers(min_value=1, max_value=1000))
waits = st.integers(min_value=0, max_value=2 * SECOND)
# Offsets of request times from T0: in any order (machines whose clocks disagree, a
# `now` read before a wait for the row lock), or sorted (one clock).
offsets = st.lists(st.integers(min_value=0, max_value=5 * SECOND), min_size=1, max_size=300)


def run(rate: SendRate, max_wait: int, nows: list[int]) -> list[tuple[int, Granted | Refused]]:
    bucket = fresh(nows[0])
    decided: list[tuple[int, Granted | Refused]] = []
    for now in nows:
        bucket, decision = take(bucket, now=now, rate=rate, max_wait=max_wait)
        decided.append((now, decision))
    return decided


def slots(decided: list[tuple[int, Granted | Refused]]) -> list[int]:
    return [d.at for _, d in decided if isinstance(d, Granted)]


def most_in_a_window(times: list[int], width: int) -> int:
    """The most of `times` in any closed window [a, a + width]."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] < t - width:
            first += 1
        most = max(most, last - first + 1)
    return most


@given(rates, waits, offsets, st.booleans())
def test_no_window_holds_more_than_burst_plus_rate_times_width(
    rate: SendRate, max_wait: int, times: list[int], in_order: bool
) -> None:
    nows = [T0 + t for t in (sorted(times) if in_order else times)]
    granted = slots(run(rate, max_wait, nows))
    for width in (0, rate.interval - 1, rate.interval, SECOND // 3, SECOND, 3 * SECOND):
        allowed = rate.burst + width // rate.interval
        assert most_in_a_window(granted, width) <= allowed
        # interval is 1/mps rounded up: the bound in messages per second is no looser.
        assert allowed <= rate.burst + width * rate.mps // SECOND


@given(rates, waits, offsets, st.booleans())
def test_waits_stay_within_max_wait_and_refusals_come_back_later(
    rate: SendRate, max_wait: int, times: list[int], in_order: bool
) -> None:
    nows = [T0 + t for t in (sorted(times) if in_order else times)]
    for now, decision in run(rate, max_wait, nows):
        if isinstance(decision, Granted):
            assert now <= decision.at <= now + max_wait
        else:
            assert decision.retry_at > now + max_wait


@given(rates, waits, offsets)
def test_with_one_clock_slots_are_granted_in_order(
    rate: SendRate, max_wait: int, times: list[int]
) -> None:
    granted = slots(run(rate, max_wait, [T0 + t for t in sorted(times)]))
    assert granted == sorted(granted)


@given(rates, waits, offsets)
def test_a_refusal_takes_no_slot_and_a_grant_moves_no_line(
    rate: SendRate, max_wait: int, times: list[int]
) -> None:
    bucket = fresh(T0)
    for now in (T0 + t for t in times):
        after, decision = take(bucket, now=now, rate=rate, max_wait=max_wait)
        if isinstance(decision, Refused):
            assert after.next_at == bucket.next_at
            assert after.retry_at == decision.retry_at + rate.interval
        else:
            assert after.retry_at == bucket.retry_at
            assert after.next_at == max(bucket.next_at, now) + rate.interval
        bucket = after


@given(rates, waits, st.integers(min_value=1, max_value=200))
def test_refused_sends_are_spread_one_interval_apart_and_find_their_slot_free(
    rate: SendRate, max_wait: int, crowd: int
) -> None:
    """A crowd arriving at once: the first ones get slots, the others a place in line."""
    decided = run(rate, max_wait, [T0] * crowd)
    granted = slots(decided)
    assert len(granted) == min(crowd, rate.burst + max_wait // rate.interval)
    refused = [d.retry_at for _, d in decided if isinstance(d, Refused)]
    assert all(b - a == rate.interval for a, b in pairwise(refused))
    # Each comes back at its time and, nobody else sending, goes at once.
    bucket = fresh(T0)
    for _ in range(crowd):
        bucket, _ = take(bucket, now=T0, rate=rate, max_wait=max_wait)
    for retry_at in refused:
        bucket, again = take(bucket, now=retry_at, rate=rate, max_wait=max_wait)
        assert again == Granted(at=retry_at)


@given(
    rates,
    waits,
    st.integers(min_value=-3 * SECOND, max_value=3 * SECOND),
    st.integers(min_value=-3 * SECOND, max_value=3 * SECOND),
    st.data(),
)
def test_taking_several_at_once_is_taking_them_one_after_another(
    rate: SendRate, max_wait: int, next_at: int, retry_at: int, data: st.DataObject
) -> None:
    """`take_all(count)`: the slots `count` calls of `take` grant, when all of them are
    granted; else nothing is taken, not even a place in the line."""
    count = data.draw(st.integers(min_value=1, max_value=most_at_once(rate, max_wait)))
    bucket = Bucket(next_at=T0 + next_at, retry_at=T0 + retry_at)
    one_by_one, decisions = bucket, []
    for _ in range(count):
        one_by_one, decision = take(one_by_one, now=T0, rate=rate, max_wait=max_wait)
        decisions.append(decision)
    together = take_all(bucket, count, now=T0, rate=rate, max_wait=max_wait)
    if all(isinstance(d, Granted) for d in decisions):
        assert together == (one_by_one, decisions)
    else:
        assert together is None


@given(rates, waits)
def test_a_fresh_bucket_grants_the_most_at_once_and_no_more(rate: SendRate, max_wait: int) -> None:
    most = most_at_once(rate, max_wait)
    assert take_all(fresh(T0), most, now=T0, rate=rate, max_wait=max_wait) is not None
    with pytest.raises(ValueError, match="count"):
        take_all(fresh(T0), most + 1, now=T0, rate=rate, max_wait=max_wait)
    with pytest.raises(ValueError, match="count"):
        take_all(fresh(T0), 0, now=T0, rate=rate, max_wait=max_wait)


@given(rates, waits, st.integers(min_value=0, max_value=10 * SECOND))
def test_an_idle_sender_sends_at_once(rate: SendRate, max_wait: int, idle: int) -> None:
    bucket = Bucket(next_at=T0, retry_at=T0)
    _, decision = take(bucket, now=T0 + rate.tolerance + idle, rate=rate, max_wait=max_wait)
    assert decision == Granted(at=T0 + rate.tolerance + idle)


def test_ten_a_second_spaces_sends_a_tenth_of_a_second_apart() -> None:
    rate = SendRate(mps=10)
    assert (rate.burst, rate.interval, rate.tolerance) == (1, 100_000, 0)
    decided = run(rate, micros(MAX_WAIT), [T0] * 14)
    assert slots(decided) == [T0 + k * 100_000 for k in range(11)]  # now, then up to 1 s
    assert [d for _, d in decided[11:]] == [
        Refused(retry_at=T0 + k * 100_000) for k in (11, 12, 13)
    ]


def test_eighty_a_second_allows_a_burst_of_eight() -> None:
    rate = SendRate(mps=80)
    assert (rate.burst, rate.interval) == (8, 12_500)
    decided = run(rate, 0, [T0] * 10)
    assert slots(decided) == [T0] * 8  # no wait allowed: the burst, then refusals
    assert [d for _, d in decided[8:]] == [
        Refused(retry_at=T0 + 12_500),
        Refused(retry_at=T0 + 25_000),
    ]


def test_a_send_may_be_half_an_interval_late_and_never_less_than_the_floor() -> None:
    assert SendRate(mps=5).late_limit == 100_000
    assert SendRate(mps=10).late_limit == 50_000
    assert SendRate(mps=80).late_limit == LATE_FLOOR == 20_000


def test_odd_rates_round_the_interval_up() -> None:
    assert SendRate(mps=3).interval == 333_334
    assert SendRate(mps=1000).interval == 1_000
    assert SendRate(mps=1000).burst == 100
    with pytest.raises(ValueError):
        SendRate(mps=0)


@given(st.datetimes(timezones=st.just(UTC)))
def test_micros_round_trip(at: datetime) -> None:
    assert from_micros(micros(at)) == at
    assert micros(timedelta(seconds=1.5)) == 1_500_000
