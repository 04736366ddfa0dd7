from __future__ import annotations

import math

import pytest

from wafile.core.plan import MAX_FALLBACK_TIME, Channel, PlanStep, Success, make_plan


def test_a_step_defaults_to_delivered_without_deadline() -> None:
    step = PlanStep(channel=Channel.WHATSAPP)
    assert (step.success, step.fallback_time) == (Success.DELIVERED, None)


@pytest.mark.parametrize("seconds", [0, -1, math.nan, math.inf, MAX_FALLBACK_TIME + 1])
def test_fallback_time_must_be_a_positive_bounded_number(seconds: float) -> None:
    with pytest.raises(ValueError, match="fallback_time"):
        PlanStep(channel=Channel.SMS, fallback_time=seconds)


@pytest.mark.parametrize("seconds", [0.5, 600, MAX_FALLBACK_TIME])
def test_fallback_time_accepts_seconds_up_to_the_bound(seconds: float) -> None:
    assert PlanStep(channel=Channel.SMS, fallback_time=seconds).fallback_time == seconds


def test_an_sms_step_cannot_wait_for_read() -> None:
    with pytest.raises(ValueError, match="no reads"):
        PlanStep(channel=Channel.SMS, success=Success.READ)
    assert PlanStep(channel=Channel.WHATSAPP, success=Success.READ).success is Success.READ


def test_a_plan_has_at_least_one_step_in_order() -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_plan([])
    steps = [PlanStep(channel=Channel.WHATSAPP, fallback_time=600), PlanStep(channel=Channel.SMS)]
    assert make_plan(iter(steps)) == tuple(steps)
