from __future__ import annotations

import pytest

from wafile.core.whatsapp_messages import (
    CAPTION_MAX,
    InvalidMessage,
    TemplateRef,
    file_message,
    template_message,
)


def test_a_document_always_carries_its_filename_and_caption() -> None:
    body = file_message(
        to="4915112345678",
        kind="document",
        media_id="42",
        filename="Rechnung März.pdf",
        caption="Ihre Rechnung",
        reply_to="wamid.Q",
    )
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "4915112345678",
        "type": "document",
        "document": {"id": "42", "filename": "Rechnung März.pdf", "caption": "Ihre Rechnung"},
        "context": {"message_id": "wamid.Q"},
    }


def test_images_have_no_filename_and_audio_no_caption() -> None:
    image = file_message(to="1", kind="image", media_id="7", filename="a.png", caption="hi")
    assert image["image"] == {"id": "7", "caption": "hi"}
    audio = file_message(to="1", kind="audio", media_id="8", filename="a.mp3")
    assert audio["audio"] == {"id": "8"} and "context" not in audio
    with pytest.raises(InvalidMessage, match="no caption on audio"):
        file_message(to="1", kind="audio", media_id="8", filename="a.mp3", caption="x")
    with pytest.raises(InvalidMessage, match="cannot send"):
        file_message(to="1", kind="location", media_id="8", filename="a")


def test_caption_limit() -> None:
    file_message(to="1", kind="video", media_id="1", filename="v.mp4", caption="x" * CAPTION_MAX)
    with pytest.raises(InvalidMessage, match="1024"):
        file_message(
            to="1", kind="video", media_id="1", filename="v.mp4", caption="x" * (CAPTION_MAX + 1)
        )


def test_template_with_document_header_keeps_the_filename() -> None:
    body = template_message(
        to="4915112345678",
        template=TemplateRef(name="file_delivery", language="en_US", body_parameters=["Invoice"]),
        header_kind="document",
        media_id="42",
        filename="invoice.pdf",
        mime_type="application/pdf",
    )
    assert body["template"] == {
        "name": "file_delivery",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "header",
                "parameters": [
                    {"type": "document", "document": {"id": "42", "filename": "invoice.pdf"}}
                ],
            },
            {"type": "body", "parameters": [{"type": "text", "text": "Invoice"}]},
        ],
    }
    with pytest.raises(InvalidMessage, match="PDF"):
        template_message(
            to="1",
            template=TemplateRef(name="t", language="en"),
            header_kind="document",
            media_id="1",
            filename="a.docx",
            mime_type="application/msword",
        )
    with pytest.raises(InvalidMessage, match="header"):
        template_message(
            to="1",
            template=TemplateRef(name="t", language="en"),
            header_kind="audio",
            media_id="1",
            filename="a.mp3",
            mime_type="audio/mpeg",
        )
