from __future__ import annotations

import math

import pytest

from wafile.core.plan import (
    MAX_FALLBACK_TIME,
    Channel,
    PlanStep,
    Success,
    make_plan,
    plan_from_json,
    plan_to_json,
)


def test_a_step_defaults_to_delivered_without_deadline() -> None:
    step = PlanStep(channel=Channel.WHATSAPP)
    assert (step.success, step.fallback_time) == (Success.DELIVERED, None)


@pytest.mark.parametrize("seconds", [0, 0.5, -1, math.nan, math.inf, MAX_FALLBACK_TIME + 1])
def test_fallback_time_must_be_a_bounded_number_of_seconds(seconds: float) -> None:
    with pytest.raises(ValueError, match="fallback_time"):
        PlanStep(channel=Channel.SMS, fallback_time=seconds)


@pytest.mark.parametrize("seconds", [1, 600, MAX_FALLBACK_TIME])
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


def test_only_an_sms_step_takes_a_text() -> None:
    with pytest.raises(ValueError, match="text"):
        PlanStep(channel=Channel.WHATSAPP, text="{link}")
    assert PlanStep(channel=Channel.SMS, text="{link}").text == "{link}"


def test_a_plan_survives_its_json_form() -> None:
    plan = make_plan(
        [
            PlanStep(channel=Channel.WHATSAPP, fallback_time=600, sender_id="snd_1"),
            PlanStep(channel=Channel.SMS, success=Success.SENT, sender_id="snd_2", text="{link}"),
        ]
    )
    assert plan_from_json(plan_to_json(plan)) == plan
