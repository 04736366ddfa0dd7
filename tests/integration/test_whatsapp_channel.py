"""The Cloud API channel against the emulator over real HTTP: upload, send, template,
Graph errors with their codes, and no answer at all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.support import AppServer, free_port
from wafile.channels.whatsapp_cloud import GraphFailure, WhatsAppCloud
from wafile.core.senders import WhatsAppSender
from wafile.core.whatsapp_messages import TemplateRef, file_message, template_message
from wafile.emulator.whatsapp import WhatsAppEmulator, create_whatsapp_app, sandbox_world
from wafile.emulator.whatsapp.world import Timing

TOKEN = "tok"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n" + b"%" + b"x" * 3_000_000 + b"\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def emulator() -> Iterator[tuple[WhatsAppEmulator, str]]:
    world = sandbox_world(
        phone_number_id="1001",
        access_token=TOKEN,
        app_secret="sec",
        webhook_url=None,
        verify_token="vt",
        timing=Timing(scale=0.01),
    )
    emulator = WhatsAppEmulator(world)
    with AppServer(create_whatsapp_app(emulator)) as server:
        yield emulator, server.url


@pytest.fixture
async def cloud() -> AsyncIterator[WhatsAppCloud]:
    async with WhatsAppCloud() as client:
        yield client


def sender(url: str) -> WhatsAppSender:
    return WhatsAppSender(
        phone_number_id="1001", waba_id="2001", display_phone_number="15550001001", graph_url=url
    )


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1 << 20):
        yield data[i : i + (1 << 20)]


async def test_upload_then_send_a_document_and_a_template(
    emulator: tuple[WhatsAppEmulator, str], cloud: WhatsAppCloud
) -> None:
    _, url = emulator
    me = sender(url)
    media_id = await cloud.upload(
        me, TOKEN, chunks=chunks(PDF), filename="Rechnung.pdf", mime_type="application/pdf"
    )
    async with httpx.AsyncClient(base_url=url) as http:
        # The magic number must write first: the 24-hour window.
        opened = await http.post(
            "/_control/phones/12015550101/messages", json={"to": "1001", "text": "hi"}
        )
        assert opened.status_code == 201, opened.text
        wamid = await cloud.send(
            me,
            TOKEN,
            file_message(
                to="12015550101",
                kind="document",
                media_id=media_id,
                filename="Rechnung.pdf",
                caption="Ihre Rechnung",
            ),
        )
        assert wamid.startswith("wamid.")
        # A closed window needs a template: the file goes as its document header.
        templated = await cloud.send(
            me,
            TOKEN,
            template_message(
                to="12015550104",
                template=TemplateRef(
                    name="file_delivery", language="en_US", body_parameters=["Rechnung"]
                ),
                header_kind="document",
                media_id=media_id,
                filename="Rechnung.pdf",
                mime_type="application/pdf",
            ),
        )
        inbox = (await http.get("/_control/phones/12015550101/inbox")).json()["messages"]
        assert [(m["id"], m["filename"], m["caption"]) for m in inbox] == [
            (wamid, "Rechnung.pdf", "Ihre Rechnung")
        ]
        received = await http.get(f"/_control/phones/12015550101/inbox/{wamid}/file")
        assert received.content == PDF  # the whole 3 MB, as uploaded
        other = (await http.get("/_control/phones/12015550104/inbox")).json()["messages"]
        assert [m["id"] for m in other] == [templated]


async def test_graph_errors_keep_their_code(
    emulator: tuple[WhatsAppEmulator, str], cloud: WhatsAppCloud
) -> None:
    _, url = emulator
    with pytest.raises(GraphFailure) as bad_token:
        await cloud.send(
            sender(url), "wrong", file_message(to="1", kind="image", media_id="1", filename="a")
        )
    assert (bad_token.value.http_status, bad_token.value.code) == (401, 190)
    with pytest.raises(GraphFailure) as unknown_template:
        await cloud.send(
            sender(url),
            TOKEN,
            template_message(
                to="12015550101",
                template=TemplateRef(name="nope", language="en_US"),
                header_kind="image",
                media_id="1",
                filename="a.png",
                mime_type="image/png",
            ),
        )
    assert unknown_template.value.code == 132001
    assert "132001" in str(unknown_template.value)


async def test_no_answer_is_a_failure_without_a_code(cloud: WhatsAppCloud) -> None:
    nobody = sender(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(GraphFailure) as failure:
        await cloud.send(
            nobody, TOKEN, file_message(to="1", kind="image", media_id="1", filename="a")
        )
    assert failure.value.http_status is None and failure.value.code is None
