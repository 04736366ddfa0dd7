from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.core.provider_errors import (
    SMS_CODES,
    WHATSAPP_CODES,
    Classification,
    Disposition,
    classify_sms,
    classify_whatsapp,
)

R, F, X = Disposition.RETRY, Disposition.FALL_BACK, Disposition.FAIL

# Every row of the error table in shared/reference/whatsapp-cloud-api.md section 3:
# (code, typical HTTP status, expected disposition, retry_after hint, halts the sender).
# The reference's action column, read as: R → retry; F → fall back; A (account) → fall
# back and halt the sender; X → fail (X/A: fail and halt).
WHATSAPP_TABLE: list[tuple[int, int, Disposition, float | None, bool]] = [
    (0, 401, X, None, True),  # X/A new token
    (3, 500, X, None, True),  # X; listed account-level in the summary
    (10, 403, X, None, True),  # X; account-level in the summary
    (190, 401, X, None, True),  # X/A refresh token
    (104, 401, X, None, False),
    (200, 403, X, None, True),  # 200–299
    (250, 403, X, None, True),
    (299, 403, X, None, True),
    (1, 400, R, None, False),  # R few times
    (2, 503, R, None, False),
    (4, 429, R, 60.0, False),
    (17, 429, R, 60.0, False),
    (80007, 429, R, 60.0, False),
    (130429, 400, R, 1.0, False),
    (131056, 400, R, 6.0, False),
    (131048, 400, F, None, True),  # A; do not hammer; F for now
    (131064, 400, F, None, True),  # A
    (133016, 400, X, None, False),
    (368, 403, F, None, True),  # A + F
    (130497, 403, F, None, False),
    (131031, 403, F, None, True),  # A + F
    (33, 400, X, None, False),
    (100, 400, X, None, False),
    (130403, 400, F, None, False),
    (130472, 400, F, None, False),
    (131000, 500, R, None, False),  # R a few times, then F
    (131005, 403, X, None, False),
    (131008, 400, X, None, False),
    (131009, 400, X, None, False),  # X (F only if it were the recipient: wafile parses those)
    (131016, 503, R, None, False),
    (131021, 400, X, None, False),
    (131026, 400, F, None, False),
    (131030, 400, F, None, False),  # summary: permanent for recipient (test mode)
    (131037, 400, F, None, True),  # A
    (131042, 400, F, None, True),  # A (+F meanwhile)
    (131045, 400, F, None, True),  # A
    (131047, 400, F, None, False),  # T or F
    (131049, 400, F, None, False),  # R24 or F
    (131050, 400, F, None, False),
    (131051, 400, X, None, False),
    (131052, 400, F, None, False),  # other channel
    (131053, 400, F, None, False),  # F to send the file another way
    (131057, 500, R, 60.0, False),  # R (minutes)
    (131063, 400, X, None, False),
    (132000, 400, X, None, False),
    (132001, 404, X, None, False),
    (132005, 400, X, None, False),
    (132007, 400, X, None, False),
    (132008, 400, X, None, False),
    (132012, 400, X, None, False),
    (132015, 400, F, None, False),  # use another template or F
    (132016, 400, X, None, False),
    (133000, 500, F, None, True),  # A
    (133004, 503, R, None, False),
    (133010, 400, F, None, True),  # A
    (133015, 400, R, 300.0, False),  # R (5 min)
    (135000, 400, X, None, False),
]

# Every code in shared/reference/sms-provider.md section 1.6 (sync with its HTTP status,
# async with None: they arrive in a status callback).
SMS_TABLE: list[tuple[int, int | None, Disposition, float | None, bool]] = [
    (20003, 401, X, None, True),
    (20404, 404, X, None, False),
    (20429, 429, R, 1.0, False),
    (21211, 400, X, None, False),
    (21408, 400, X, None, False),
    (21606, 400, X, None, True),
    (21610, 400, F, None, False),  # unsubscribed from SMS: another channel may reach them
    (21614, 400, F, None, False),  # not a mobile: SMS impossible
    (21617, 400, X, None, False),
    (21620, 400, X, None, False),
    (21623, 400, X, None, False),
    (30001, None, R, 60.0, False),
    (30002, None, F, None, True),
    (30003, None, R, 300.0, False),
    (30004, None, F, None, False),
    (30005, None, F, None, False),
    (30006, None, F, None, False),
    (30007, None, F, None, False),
    (30008, None, R, None, False),
    (30010, None, X, None, False),
    (63016, None, F, None, False),
]


def _check(got: Classification, disposition: Disposition, after: float | None, halts: bool) -> None:
    assert got.disposition is disposition
    assert got.retry_after == after
    assert got.halts_sender is halts
    assert got.reason.strip()


@pytest.mark.parametrize(("code", "http", "disposition", "after", "halts"), WHATSAPP_TABLE)
def test_whatsapp_code(
    code: int, http: int, disposition: Disposition, after: float | None, halts: bool
) -> None:
    _check(classify_whatsapp(code, http), disposition, after, halts)
    # The code decides, wherever it arrives: sync with any status, or in a webhook.
    for status in (None, 200, 400, 429, 500, 503):
        assert classify_whatsapp(code, status) == classify_whatsapp(code, http)


@pytest.mark.parametrize(("code", "http", "disposition", "after", "halts"), SMS_TABLE)
def test_sms_code(
    code: int, http: int | None, disposition: Disposition, after: float | None, halts: bool
) -> None:
    _check(classify_sms(code, http), disposition, after, halts)
    for status in (None, 400, 429, 500):
        assert classify_sms(code, status) == classify_sms(code, http)


def test_the_tables_classify_exactly_the_reference_codes() -> None:
    tested = {row[0] for row in WHATSAPP_TABLE} | set(range(200, 300))
    assert set(WHATSAPP_CODES) == tested
    assert set(SMS_CODES) == {row[0] for row in SMS_TABLE}


def test_only_retries_carry_a_wait() -> None:
    for table in (WHATSAPP_CODES, SMS_CODES):
        for c in table.values():
            assert c.retry_after is None or (c.disposition is R and c.retry_after > 0)


@pytest.mark.parametrize("classify", [classify_whatsapp, classify_sms])
@pytest.mark.parametrize(
    ("http", "disposition"),
    [
        (400, X),
        (401, X),
        (403, X),
        (404, X),
        (422, X),
        (429, R),  # too many requests is a throttle, whatever the code
        (500, R),
        (502, R),
        (503, R),
        (None, R),  # no answer: the send may have gone; the job layer bounds the retries
    ],
)
def test_unknown_codes_follow_the_http_status(
    classify: Callable[[int | None, int | None], Classification],
    http: int | None,
    disposition: Disposition,
) -> None:
    for code in (999_999, None):
        got = classify(code, http)
        assert got.disposition is disposition
        assert got.retry_after is None
        assert not got.halts_sender
        assert got.reason.strip()


def test_unknown_reasons_name_the_code_and_status() -> None:
    assert "424242" in classify_whatsapp(424242, 400).reason
    assert "HTTP 400" in classify_whatsapp(424242, 400).reason
    assert "no answer" in classify_sms(None, None).reason


@given(
    code=st.integers(min_value=-(2**31), max_value=2**31),
    http=st.one_of(st.none(), st.integers(min_value=100, max_value=599)),
)
def test_any_code_gets_a_classification(code: int, http: int | None) -> None:
    for classify, table in ((classify_whatsapp, WHATSAPP_CODES), (classify_sms, SMS_CODES)):
        got = classify(code, http)
        if code in table:
            assert got is table[code]
        elif http is not None and 400 <= http < 500 and http != 429:
            assert got.disposition is X
        else:
            assert got.disposition is R
