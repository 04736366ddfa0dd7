"""Reading send requests: values for what Meta accepts, its errors for what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.emulator.whatsapp.graph_errors import GraphError
from wafile.emulator.whatsapp.outgoing import (
    MediaRef,
    Outgoing,
    ReadReceipt,
    TemplateRequest,
    parse_send,
)


def msg(**fields: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": "+4915100000001", **fields}


def code_of(body: Any) -> int:
    with pytest.raises(GraphError) as caught:
        parse_send(body)
    return caught.value.code


def test_document_by_id() -> None:
    got = parse_send(
        msg(
            type="document",
            document={"id": "42", "caption": "c", "filename": "a.pdf"},
            context={"message_id": "wamid.x"},
            biz_opaque_callback_data="t",
        )
    )
    assert got == Outgoing(
        to="4915100000001",
        to_input="+4915100000001",
        type="document",
        media=MediaRef(id="42", caption="c", filename="a.pdf"),
        context_message_id="wamid.x",
        biz_opaque_callback_data="t",
    )


def test_text_is_the_default_type() -> None:
    got = parse_send(msg(text={"body": "hi", "preview_url": True}))
    assert isinstance(got, Outgoing) and got.type == "text" and got.text == "hi"


def test_read_receipt() -> None:
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}
    assert parse_send(body) == ReadReceipt(message_id="wamid.1")
    typing = parse_send({**body, "typing_indicator": {"type": "text"}})
    assert typing == ReadReceipt(message_id="wamid.1", typing_indicator=True)
    assert code_of({**body, "status": "delivered"}) == 100
    assert code_of({**body, "typing_indicator": {"type": "audio"}}) == 100
    assert code_of({k: v for k, v in body.items() if k != "message_id"}) == 131008


def test_template_with_media_header_and_rich_parameters() -> None:
    got = parse_send(
        msg(
            type="template",
            template={
                "name": "invoice_ready",
                "language": {"code": "en_US", "policy": "deterministic"},
                "components": [
                    {
                        "type": "header",
                        "parameters": [
                            {
                                "type": "document",
                                "document": {"link": "https://x.test/a.pdf", "filename": "a.pdf"},
                            }
                        ],
                    },
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "42"},
                            {
                                "type": "currency",
                                "currency": {
                                    "fallback_value": "$1",
                                    "code": "USD",
                                    "amount_1000": 1000,
                                },
                            },
                            {"type": "date_time", "date_time": {"fallback_value": "today"}},
                        ],
                    },
                    {"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []},
                ],
            },
        )
    )
    assert isinstance(got, Outgoing)
    assert got.template == TemplateRequest(
        name="invoice_ready",
        language="en_US",
        header_kind="document",
        header_media=MediaRef(link="https://x.test/a.pdf", filename="a.pdf"),
        body=("42", "$1", "today"),
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], 100),
        ({"to": "1"}, 131008),
        ({"messaging_product": "sms"}, 100),
        (msg(type="interactive", interactive={}), 131051),
        (msg(type="contacts", contacts=[]), 131051),
        (msg(type="nope"), 100),
        (msg(type="text", text="hi"), 100),
        (msg(type="image", image={"id": "1", "link": "https://x.test/a.png"}), 100),
        (msg(type="image", image={"id": ""}), 131009),
        (msg(type="image", image={"id": 5}), 100),
        (msg(type="audio", audio={"id": "1", "caption": "x"}), 100),
        (msg(type="video", video={"id": "1", "filename": "x.mp4"}), 100),
        (msg(type="document", document={"id": "1", "filename": " "}), 100),
        (msg(type="reaction", reaction={"message_id": "w", "emoji": "x" * 11}), 131009),
        (msg(type="template", template={"name": "t"}), 131008),
        (msg(type="template", template={"name": "t", "language": "en_US"}), 100),
        (
            msg(
                type="template",
                template={"name": "t", "language": {"code": "en", "policy": "fallback"}},
            ),
            100,
        ),
        (
            msg(
                type="template",
                template={"name": "t", "language": {"code": "en"}, "components": {}},
            ),
            100,
        ),
        (
            msg(
                type="template",
                template={
                    "name": "t",
                    "language": {"code": "en"},
                    "components": [{"type": "footer"}],
                },
            ),
            100,
        ),
        (
            msg(
                type="template",
                template={
                    "name": "t",
                    "language": {"code": "en"},
                    "components": [{"type": "body"}, {"type": "body"}],
                },
            ),
            100,
        ),
        (
            msg(
                type="template",
                template={
                    "name": "t",
                    "language": {"code": "en"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": ""}]}],
                },
            ),
            131009,
        ),
        (
            msg(
                type="template",
                template={
                    "name": "t",
                    "language": {"code": "en"},
                    "components": [
                        {
                            "type": "header",
                            "parameters": [
                                {"type": "image", "image": {"id": "1"}},
                                {"type": "image", "image": {"id": "2"}},
                            ],
                        }
                    ],
                },
            ),
            100,
        ),
        (msg(text={"body": "x"}, biz_opaque_callback_data="x" * 513), 100),
        (msg(text={"body": "x"}, context="wamid"), 100),
    ],
)
def test_refusals(body: Any, code: int) -> None:
    assert code_of(body) == code


@given(length=st.integers(min_value=0, max_value=1200))
def test_caption_limit(length: int) -> None:
    body = msg(type="image", image={"id": "1", "caption": "é" * length})
    if length <= 1024:
        got = parse_send(body)
        assert isinstance(got, Outgoing) and got.media and len(got.media.caption or "") == length
    else:
        assert code_of(body) == 100


@given(length=st.integers(min_value=1, max_value=300))
def test_filename_limit(length: int) -> None:
    body = msg(type="document", document={"id": "1", "filename": "n" * length})
    if length <= 240:
        assert isinstance(parse_send(body), Outgoing)
    else:
        assert code_of(body) == 100


@given(length=st.integers(min_value=1, max_value=5000))
def test_text_limit(length: int) -> None:
    body = msg(text={"body": "x" * length})
    assert (code_of(body) == 100) if length > 4096 else isinstance(parse_send(body), Outgoing)


@given(digits=st.from_regex(r"[1-9][0-9]{5,14}", fullmatch=True), plus=st.booleans())
def test_numbers_with_or_without_plus(digits: str, plus: bool) -> None:
    got = parse_send(msg(to=("+" if plus else "") + digits, text={"body": "x"}))
    assert isinstance(got, Outgoing) and got.to == digits
