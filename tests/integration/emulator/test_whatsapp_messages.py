"""POST /{phone-number-id}/messages over real HTTP: every message type, Meta's limits,
the 24-hour window, templates, throughput and pair rates, scripted and magic phones,
and media sent by `link` (fetched by the emulator itself)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    CLOSED_PHONE,
    OPEN_PHONE,
    PNID,
    Harness,
    Servers,
    auth,
    emulator_running,
    graph_error,
    mp4,
    ogg_opus,
    pdf,
    png,
    running_servers,
    settle,
    sha256_hex,
    webp,
)
from tests.support import free_port

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


def text(to: str, body: str = "hello") -> dict[str, Any]:
    return {"to": to, "type": "text", "text": {"body": body}}


def template(name: str, language: str = "en_US", *components: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "template",
        "template": {"name": name, "language": {"code": language}, "components": list(components)},
    }


def header(kind: str, media: dict[str, Any]) -> dict[str, Any]:
    return {"type": "header", "parameters": [{"type": kind, kind: media}]}


def body(*values: str) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}


MEDIA_CASES = {
    "document": (pdf(100), "application/pdf", {"caption": "Invoice", "filename": "inv.pdf"}),
    "image": (png(), "image/png", {"caption": "A picture"}),
    "video": (mp4(), "video/mp4", {"caption": "A clip"}),
    "audio": (ogg_opus(), "audio/ogg", {}),
    "sticker": (webp(), "image/webp", {}),
}


@pytest.mark.parametrize("kind", sorted(MEDIA_CASES))
async def test_media_messages_by_id_reach_the_inbox(wa: Harness, kind: str) -> None:
    data, mime, extra = MEDIA_CASES[kind]
    media_id = await wa.media_id(data, mime)
    wamid = await wa.sent_id({"to": OPEN_PHONE, "type": kind, kind: {"id": media_id, **extra}})
    await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    [item] = await wa.inbox(OPEN_PHONE)
    assert item["type"] == kind and item["mime_type"] == mime
    assert item["sha256"] == sha256_hex(data) and item["file_size"] == len(data)
    assert item.get("caption") == extra.get("caption")
    assert item.get("filename") == extra.get("filename")
    got = await wa.client.get(item["file_url"])
    assert got.content == data and got.headers["content-type"].startswith(mime)


async def test_text_reaction_reply_and_biz_opaque_data(wa: Harness) -> None:
    first = await wa.sent_id(
        {**text(OPEN_PHONE, "Your file is ready"), "biz_opaque_callback_data": "job-7"}
    )
    reaction = await wa.sent_id(
        {"to": OPEN_PHONE, "type": "reaction", "reaction": {"message_id": first, "emoji": "👍"}}
    )
    reply = await wa.sent_id({**text(OPEN_PHONE, "see above"), "context": {"message_id": first}})
    posts = await wa.wait_statuses(first, ["sent", "delivered", "read"])
    assert all(p.status and p.status["biz_opaque_callback_data"] == "job-7" for p in posts)
    await wa.wait_statuses(reaction, ["sent", "delivered", "read"])
    await wa.wait_statuses(reply, ["sent", "delivered", "read"])
    items = {i["id"]: i for i in await wa.inbox(OPEN_PHONE)}
    assert items[first]["text"] == "Your file is ready"
    assert items[first]["biz_opaque_callback_data"] == "job-7"
    assert items[reaction]["reaction"] == {"message_id": first, "emoji": "👍"}
    assert items[reply]["context"] == {"message_id": first}
    assert "file_url" not in items[first]


async def test_type_defaults_to_text_and_numbers_are_normalised(wa: Harness) -> None:
    resp = await wa.send({"to": "+49 151-000-000-01", "text": {"body": "no type"}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["contacts"] == [{"input": "+49 151-000-000-01", "wa_id": OPEN_PHONE}]
    [item] = await wa.inbox("+" + OPEN_PHONE)
    assert item["type"] == "text" and item["text"] == "no type"


async def test_read_receipts_mark_inbound_messages(wa: Harness) -> None:
    ids = []
    for words in ("one", "two", "three"):
        resp = await wa.control(
            "POST", f"/phones/{OPEN_PHONE}/messages", json={"to": PNID, "text": words}
        )
        ids.append(resp.json()["message"]["id"])
    resp = await wa.send({"status": "read", "message_id": ids[1]})
    assert resp.status_code == 200 and resp.json() == {"success": True}
    sent = (await wa.control("GET", f"/phones/{OPEN_PHONE}/sent")).json()["messages"]
    assert [m["read_by_business"] for m in sent] == [True, True, False]  # earlier ones too

    graph_error(await wa.send({"status": "read", "message_id": "wamid.nope"}), 400, 100)
    other = await wa.send({"status": "read", "message_id": ids[2]}, token="tok-1002", pnid="1002")
    graph_error(other, 400, 100)  # received by 1001, not 1002


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "image", "image": {"id": "ID", "caption": "c" * 1025}}, 100),
        ({"type": "audio", "audio": {"id": "ID", "caption": "no"}}, 100),
        ({"type": "sticker", "sticker": {"id": "ID", "caption": "no"}}, 100),
        ({"type": "image", "image": {"id": "ID", "filename": "a.png"}}, 100),
        ({"type": "document", "document": {"id": "ID", "filename": "f" * 241}}, 100),
        ({"type": "document", "document": {"id": "ID", "link": "https://x.test/a.pdf"}}, 100),
        ({"type": "document", "document": {"caption": "neither id nor link"}}, 131008),
        ({"type": "video", "video": {"link": "ftp://x.test/a.mp4"}}, 100),
        ({"type": "text", "text": {"body": "x" * 4097}}, 100),
        ({"type": "text", "text": {"body": ""}}, 100),
        ({"type": "text", "text": {"body": "hi"}, "document": {"id": "ID"}}, 100),
        ({"type": "text", "text": {"body": "hi", "preview": True}}, 100),
        ({"type": "image", "image": {"id": "999999"}}, 131009),
        ({"type": "location", "location": {"latitude": "1", "longitude": "2"}}, 131051),
        ({"type": "carrier_pigeon", "carrier_pigeon": {}}, 100),
        ({"type": "text"}, 131008),
        ({"type": "reaction", "reaction": {"emoji": "👍"}}, 131008),
        ({"type": "text", "text": {"body": "hi"}, "recipient_type": "group"}, 100),
        ({"type": "text", "text": {"body": "hi"}, "to": "not-a-number"}, 131009),
        ({"type": "text", "text": {"body": "hi"}, "to": None}, 131009),
        ({"type": "text", "text": {"body": "hi"}, "context": {"id": "x"}}, 100),
    ],
)
async def test_invalid_messages_are_refused_like_meta(
    wa: Harness, message: dict[str, Any], code: int
) -> None:
    media_id = await wa.media_id(pdf())
    image_id = await wa.media_id(png(), "image/png")
    resolved: dict[str, Any] = {"to": OPEN_PHONE}
    for key, value in message.items():
        if isinstance(value, dict):
            value = {
                k: ({"document": media_id}.get(key, image_id) if v == "ID" else v)
                for k, v in value.items()
            }
        resolved[key] = value
    error = graph_error(await wa.send(resolved), 400, code)
    assert error["error_data"]["details"]
    assert await wa.inbox(OPEN_PHONE) == []


async def test_limits_are_inclusive(wa: Harness) -> None:
    image_id = await wa.media_id(png(), "image/png")
    doc_id = await wa.media_id(pdf())
    accepted = [
        {"type": "image", "image": {"id": image_id, "caption": "c" * 1024}},
        {"type": "document", "document": {"id": doc_id, "filename": "f" * 236 + ".pdf"}},
        {"type": "text", "text": {"body": "x" * 4096}},
    ]
    for message in accepted:
        resp = await wa.send({"to": OPEN_PHONE, **message})
        assert resp.status_code == 200, resp.text


async def test_missing_messaging_product_and_bad_json(wa: Harness) -> None:
    resp = await wa.client.post(
        f"/v23.0/{PNID}/messages", headers=auth("tok-1001"), json={"to": OPEN_PHONE}
    )
    graph_error(resp, 400, 131008)
    resp = await wa.client.post(
        f"/v23.0/{PNID}/messages", headers=auth("tok-1001"), content=b"{not json"
    )
    graph_error(resp, 400, 100)
    resp = await wa.send({"messaging_product": "sms", **text(OPEN_PHONE)})
    graph_error(resp, 400, 100)


async def test_the_24_hour_window(wa: Harness) -> None:
    # Closed: a free-form message is accepted (200), then fails 131047 with no `sent`.
    wamid = await wa.sent_id(text(CLOSED_PHONE))
    error = await wa.failed_error(wamid)
    assert error["code"] == 131047 and error["title"] == "Re-engagement message"
    assert error["href"].startswith("https://developers.facebook.com/")

    # A template goes through a closed window.
    doc_id = await wa.media_id(pdf())
    tpl = await wa.sent_id(
        {
            "to": CLOSED_PHONE,
            **template("invoice_ready", "en_US", header("document", {"id": doc_id}), body("42")),
        }
    )
    posts = await wa.wait_statuses(tpl, ["sent", "delivered", "read"])
    pricing = posts[0].status["pricing"] if posts[0].status else {}
    assert pricing["category"] == "utility" and pricing["billable"] is True

    # The user writes: the window opens for 24 hours, for this business number only.
    resp = await wa.control(
        "POST", f"/phones/{CLOSED_PHONE}/messages", json={"to": PNID, "text": "hi"}
    )
    assert resp.status_code == 201, resp.text
    inside = await wa.sent_id(text(CLOSED_PHONE, "inside"))
    posts = await wa.wait_statuses(inside, ["sent", "delivered", "read"])
    pricing = posts[0].status["pricing"] if posts[0].status else {}
    assert pricing["type"] == "free_customer_service" and pricing["billable"] is False
    # Number 1002 has no webhook URL: its webhooks are only logged.
    other = (await wa.send(text(CLOSED_PHONE), token="tok-1002", pnid="1002")).json()
    other_id = other["messages"][0]["id"]
    log: list[dict[str, Any]] = []

    async def logged() -> None:
        resp = await wa.control("GET", "/webhooks", params={"message_id": other_id})
        log[:] = resp.json()["deliveries"]

    for _ in range(100):
        await logged()
        if log:
            break
        await settle(0.02)
    [entry] = log
    assert entry["outcome"] == "no_webhook_url" and entry["status"] == "failed"
    status = entry["body"]["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status["errors"][0]["code"] == 131047

    wa.clock.advance(24 * 3600 - 1)
    still = await wa.sent_id(text(CLOSED_PHONE, "still inside"))
    await wa.wait_statuses(still, ["sent", "delivered", "read"])
    wa.clock.advance(2)
    late = await wa.sent_id(text(CLOSED_PHONE, "too late"))
    assert (await wa.failed_error(late))["code"] == 131047
    view = (await wa.control("GET", f"/phones/{CLOSED_PHONE}")).json()
    assert view["windows"][PNID]["open"] is False


async def test_declared_window_open_and_undeclared_phones_start_closed(wa: Harness) -> None:
    ok = await wa.sent_id(text(OPEN_PHONE))
    await wa.wait_statuses(ok, ["sent", "delivered", "read"])
    for phone in ("12015550101", "4930123456"):
        wamid = await wa.sent_id(text(phone))
        assert (await wa.failed_error(wamid))["code"] == 131047


@pytest.mark.parametrize(
    ("message", "status", "code"),
    [
        (template("nope"), 404, 132001),
        (template("invoice_ready", "de"), 404, 132001),
        (template("draft"), 404, 132001),
        (template("tired"), 400, 132015),
        (template("invoice_ready", "en_US", body("42")), 400, 132000),
        (template("invoice_ready", "en_US", header("document", {"id": "DOC"})), 400, 132000),
        (
            template("invoice_ready", "en_US", header("document", {"id": "DOC"}), body("1", "2")),
            400,
            132000,
        ),
        (
            template("invoice_ready", "en_US", header("image", {"id": "DOC"}), body("42")),
            400,
            132012,
        ),
        (template("greeting", "de"), 400, 132000),
        (template("photo_ready", "en_US", header("image", {"id": "404"})), 400, 131009),
        (
            template(
                "invoice_ready",
                "en_US",
                header("document", {"id": "DOC", "caption": "no"}),
                body("1"),
            ),
            400,
            100,
        ),
    ],
)
async def test_template_rules(wa: Harness, message: dict[str, Any], status: int, code: int) -> None:
    doc_id = await wa.media_id(pdf())
    graph_error(await wa.send({"to": OPEN_PHONE, **fill(message, doc_id)}), status, code)


def fill(value: Any, media_id: str) -> Any:
    """`value` with every "DOC" placeholder replaced by a real media id."""
    if isinstance(value, dict):
        return {k: fill(v, media_id) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, media_id) for v in value]
    return media_id if value == "DOC" else value


async def test_template_text_header_and_document_header_needs_pdf(wa: Harness) -> None:
    greeting = {
        "to": OPEN_PHONE,
        **template(
            "greeting", "de", {"type": "header", "parameters": [{"type": "text", "text": "Ana"}]}
        ),
    }
    ok = await wa.sent_id(greeting)
    await wa.wait_statuses(ok, ["sent", "delivered", "read"])
    docx_id = await wa.media_id(b"PK\x03\x04rest-of-a-docx", DOCX)
    wamid = await wa.sent_id(
        {
            "to": OPEN_PHONE,
            **template("invoice_ready", "en_US", header("document", {"id": docx_id}), body("1")),
        }
    )
    error = await wa.failed_error(wamid)
    assert error["code"] == 131053 and "PDF" in error["error_data"]["details"]
    items = {i["id"]: i for i in await wa.inbox(OPEN_PHONE)}
    assert items[ok]["template"]["header"] == {"type": "text", "parameters": ["Ana"]}


async def test_throughput_per_number(wa: Harness) -> None:
    number = (await wa.control("GET", "/numbers")).json()["numbers"][0]
    resp = await wa.control("PUT", f"/numbers/{PNID}", json={**number, "mps": 3})
    assert resp.status_code == 200, resp.text
    for i in range(3):
        assert (await wa.send(text(f"4915100009{i:03d}"))).status_code == 200
    error = graph_error(await wa.send(text("4915100009999")), 400, 130429)
    assert error["error_subcode"] == 2494055 and error["is_transient"] is True
    # Other numbers have their own budget; this one recovers after a second.
    other = await wa.send(text("4915100009999"), token="tok-1002", pnid="1002")
    assert other.status_code == 200
    wa.clock.advance(1.01)
    assert (await wa.send(text("4915100009999"))).status_code == 200


async def test_inbound_messages_count_towards_throughput(wa: Harness) -> None:
    number = (await wa.control("GET", "/numbers")).json()["numbers"][0]
    await wa.control("PUT", f"/numbers/{PNID}", json={**number, "mps": 2})
    for words in ("a", "b"):
        await wa.control("POST", f"/phones/{OPEN_PHONE}/messages", json={"to": PNID, "text": words})
    graph_error(await wa.send(text(OPEN_PHONE)), 400, 130429)


async def test_pair_rate_limit(wa: Harness) -> None:
    resp = await wa.control(
        "PATCH", "/settings", json={"pair_burst": 2, "pair_interval": 6, "pair_rate_limit": True}
    )
    assert resp.status_code == 200, resp.text
    assert (await wa.send(text(OPEN_PHONE))).status_code == 200
    assert (await wa.send(text(OPEN_PHONE))).status_code == 200
    error = graph_error(await wa.send(text(OPEN_PHONE)), 400, 131056)
    assert error["error_data"]["details"]
    assert (await wa.send(text(CLOSED_PHONE))).status_code == 200  # others unaffected
    wa.clock.advance(6)
    assert (await wa.send(text(OPEN_PHONE))).status_code == 200
    graph_error(await wa.send(text(OPEN_PHONE)), 400, 131056)

    await wa.control("PATCH", "/settings", json={"pair_rate_limit": False})
    for _ in range(10):
        assert (await wa.send(text(OPEN_PHONE))).status_code == 200


async def test_not_on_whatsapp_fails_131026(wa: Harness) -> None:
    await wa.control("PUT", "/phones/4915100000099", json={"on_whatsapp": False})
    for phone in ("12015550103", "4915100000099"):
        resp = await wa.send(
            {
                "to": phone,
                **template(
                    "photo_ready", "en_US", header("image", {"link": "https://x.test/a.png"})
                ),
            }
        )
        assert resp.status_code == 200, resp.text  # accepted first, as Meta does
        error = await wa.failed_error(resp.json()["messages"][0]["id"])
        assert error["code"] == 131026 and error["title"] == "Message undeliverable"


async def test_magic_numbers(wa: Harness) -> None:
    # Magic numbers start with the window closed: each one writes first.
    for n in range(1, 7):
        await wa.control(
            "POST", f"/phones/+1201555010{n}/messages", json={"to": PNID, "text": "hi"}
        ) if n != 3 else None
    doc_id = await wa.media_id(pdf())
    ordinary = await wa.sent_id(text("+12015550101"))
    never_delivered = await wa.sent_id(text("+12015550102"))
    never_read = await wa.sent_id(text("+12015550104"))
    file_fails = await wa.sent_id(
        {"to": "+12015550105", "type": "document", "document": {"id": doc_id}}
    )
    text_ok = await wa.sent_id(text("+12015550105"))
    throttled = await wa.send(text("+12015550106"))
    graph_error(throttled, 400, 130429)
    after = await wa.sent_id(text("+12015550106"))

    await wa.wait_statuses(ordinary, ["sent", "delivered", "read"])
    await wa.wait_statuses(text_ok, ["sent", "delivered", "read"])
    await wa.wait_statuses(after, ["sent", "delivered", "read"])
    assert (await wa.failed_error(file_fails))["code"] == 131053
    await wa.wait_statuses(never_read, ["sent", "delivered"])
    await wa.wait_statuses(never_delivered, ["sent"])
    await settle()
    assert wa.receiver.statuses(never_delivered) == ["sent"]
    assert wa.receiver.statuses(never_read) == ["sent", "delivered"]
    magic = (await wa.control("GET", "/phones")).json()["magic_phones"]
    assert [m["number"] for m in magic] == [f"1201555010{n}" for n in range(1, 7)]


async def test_scripted_phone(wa: Harness) -> None:
    await wa.control(
        "PUT",
        "/phones/4915100000077",
        json={"window_open": True, "deliver_after": None, "read_after": 1},
    )
    await wa.control(
        "PUT", "/phones/4915100000078", json={"window_open": True, "fail_with": 131049}
    )
    await wa.control(
        "PUT", "/phones/4915100000079", json={"window_open": True, "throttle_first": 2}
    )
    stays = await wa.sent_id(text("4915100000077"))
    fails = await wa.sent_id(text("4915100000078"))
    graph_error(await wa.send(text("4915100000079")), 400, 130429)
    graph_error(await wa.send(text("4915100000079")), 400, 130429)
    assert (await wa.send(text("4915100000079"))).status_code == 200
    assert (await wa.failed_error(fails))["code"] == 131049
    await wa.wait_statuses(stays, ["sent"])
    await settle()
    assert wa.receiver.statuses(stays) == ["sent"]


async def test_media_by_link_is_fetched(wa: Harness) -> None:
    data = png(100)
    wa.receiver.files["ok.png"] = (data, "image/png", 200)
    wa.receiver.files["page.png"] = (b"<html></html>", "text/html", 200)
    wa.receiver.files["gone.png"] = (b"", "image/png", 404)
    wa.receiver.files["liar.png"] = (pdf(), "image/png", 200)
    ok = await wa.sent_id(
        {"to": OPEN_PHONE, "type": "image", "image": {"link": wa.servers.file_url("ok.png")}}
    )
    await wa.wait_statuses(ok, ["sent", "delivered", "read"])
    [item] = await wa.inbox(OPEN_PHONE)
    assert item["link"] == wa.servers.file_url("ok.png")
    assert (await wa.client.get(item["file_url"])).content == data

    unreachable = f"http://127.0.0.1:{free_port()}/a.png"
    for link in (
        wa.servers.file_url("page.png"),
        wa.servers.file_url("gone.png"),
        wa.servers.file_url("liar.png"),
        unreachable,
    ):
        wamid = await wa.sent_id({"to": OPEN_PHONE, "type": "image", "image": {"link": link}})
        error = await wa.failed_error(wamid)
        assert error["code"] == 131053 and error["error_data"]["details"], link


async def test_per_category_size_limits_apply_at_send(wa: Harness) -> None:
    big_png = png(5 * 1024 * 1024)
    big_id = await wa.media_id(big_png, "image/png")
    as_image = await wa.sent_id({"to": OPEN_PHONE, "type": "image", "image": {"id": big_id}})
    error = await wa.failed_error(as_image)
    assert error["code"] == 131053 and "bytes" in error["error_data"]["details"]
    as_document = await wa.sent_id(
        {"to": OPEN_PHONE, "type": "document", "document": {"id": big_id, "filename": "a.png"}}
    )
    await wa.wait_statuses(as_document, ["sent", "delivered", "read"])

    static = await wa.media_id(webp(100 * 1024), "image/webp")
    animated = await wa.media_id(webp(100 * 1024, animated=True), "image/webp")
    too_big = await wa.sent_id({"to": OPEN_PHONE, "type": "sticker", "sticker": {"id": static}})
    fine = await wa.sent_id({"to": OPEN_PHONE, "type": "sticker", "sticker": {"id": animated}})
    assert (await wa.failed_error(too_big))["code"] == 131053
    await wa.wait_statuses(fine, ["sent", "delivered", "read"])

    pdf_id = await wa.media_id(pdf())
    wrong = await wa.sent_id({"to": OPEN_PHONE, "type": "video", "video": {"id": pdf_id}})
    assert (await wa.failed_error(wrong))["code"] == 131053


async def test_media_belongs_to_the_uploading_number(wa: Harness) -> None:
    media_id = await wa.media_id(pdf())
    resp = await wa.send(
        {"to": OPEN_PHONE, "type": "document", "document": {"id": media_id}},
        token="tok-1002",
        pnid="1002",
    )
    graph_error(resp, 400, 131009)


async def test_inbound_media_can_be_sent_back(wa: Harness) -> None:
    data = pdf(10)
    resp = await wa.control(
        "POST",
        f"/phones/{OPEN_PHONE}/messages",
        json={
            "to": "15550001001",
            "type": "document",
            "mime_type": "application/pdf",
            "filename": "mine.pdf",
            "content_base64": base64.b64encode(data).decode(),
        },
    )
    media_id = resp.json()["message"]["media_id"]
    echo = await wa.sent_id({"to": OPEN_PHONE, "type": "document", "document": {"id": media_id}})
    await wa.wait_statuses(echo, ["sent", "delivered", "read"])
    [item] = await wa.inbox(OPEN_PHONE)
    assert item["filename"] == "mine.pdf"  # the stored name, when the message gives none
