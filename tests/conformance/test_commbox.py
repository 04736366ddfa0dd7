"""CommBox (seed 003) under `/commbox`, over real HTTP on SQLite and PostgreSQL: the
page's upload (`pic` to `/whatsapp/uploadmedia/{ENCRYPTED_STREAM_ID}` with a Bearer key)
answered in the page's envelope; the templated-message call that sends the uploaded id
as the header attachment, ending in the emulator phone's inbox; and hostile variants,
each in the page's error envelope with the page's status codes, never problem+json."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.test_messages import CONTROL
from tests.support import LiveServer, eventually, make_key

MP4 = (
    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    + b"\x00\x00\x00\x08free"
    + b"\x00\x00\x01\x00mdat"
    + b"\x07" * 248
)
PHONE = "19172537000"  # CommBox's example recipient; behaves like +12015550101
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
WAIT = 20.0


async def stream_of(http: httpx.AsyncClient, key: str) -> str:
    """The sandbox sender's stream id, as `GET /v1/senders` shows it."""
    resp = await http.get("/v1/senders", headers={"Authorization": f"Bearer {key}"})
    [sender] = resp.json()["data"]
    return str(sender["commbox_stream_id"])


def envelope(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The page's envelope: status (a string for 200 and 400, a number otherwise),
    description, response_time; never problem+json."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["status"] == (str(status) if status in (200, 400) else status)
    assert isinstance(body["description"], str) and body["description"]
    assert TIME.match(body["response_time"]), body["response_time"]
    assert set(body) <= {"status", "description", "response_time", "data"}
    if status == 400:
        [item] = body["data"]
        assert set(item) == {"recipient", "status", "failed"}
        assert isinstance(item["recipient"], str) and item["status"] == 400
        assert isinstance(item["failed"], str) and item["failed"]
    return dict(body)


def template(header: dict[str, Any], to: str = PHONE) -> dict[str, Any]:
    return {
        "template_data": {
            "to": to,
            "template": {
                "name": "video_delivery",
                "language": {"code": "en_US"},
                "components": [
                    {"type": "header", "parameters": [header]},
                    {"type": "body", "parameters": [{"type": "text", "text": "your video"}]},
                ],
            },
        },
        "ManagerId": 7,  # CommBox object data: ignored
    }


async def test_upload_then_send_the_id_as_the_template_header(
    live_server: LiveServer, sandbox_key: str
) -> None:
    auth = {"Authorization": f"Bearer {sandbox_key}"}
    async with live_server.client() as http:
        await http.patch(f"{CONTROL}/settings", json={"pair_rate_limit": False})
        stream = await stream_of(http, sandbox_key)
        made = await http.post(
            f"/commbox/whatsapp/uploadmedia/{stream}",
            headers=auth,
            files={"pic": ("video_sample.mp4", MP4, "video/mp4")},
        )
        body = envelope(made, 200)
        assert body["description"] == "Operation successful"
        [item] = body["data"]
        assert set(item) == {"filename", "id"} and item["filename"] == "video_sample.mp4"
        assert isinstance(item["id"], str)

        sent = await http.post(
            f"/commbox/v2/whatsapp/sendtemplatedmessage/{stream}",
            headers=auth,
            json={"data": [template({"type": "video", "video": {"id": item["id"]}})]},
        )
        [queued] = envelope(sent, 200)["data"]
        assert queued["recipient"] == PHONE and queued["status"] == 200

        async def inbox() -> list[dict[str, Any]]:
            resp = await http.get(f"{CONTROL}/phones/{PHONE}/inbox")
            return list(resp.json()["messages"])

        async def arrived() -> bool:
            return bool(await inbox())

        await eventually(arrived, "the video in the phone's inbox", seconds=WAIT)
        [got] = await inbox()
        assert got["type"] == "template" and got["sha256"] == hashlib.sha256(MP4).hexdigest()
        message = await http.get(f"/v1/messages/{queued['id']}", headers=auth)
        assert message.json()["to"] == f"+{PHONE}"


async def test_hostile_requests_get_the_page_envelope(
    live_server: LiveServer, engine: AsyncEngine, sandbox_key: str
) -> None:
    stranger = await make_key(engine, "other")
    auth = {"Authorization": f"Bearer {sandbox_key}"}
    async with live_server.client() as http:
        stream = await stream_of(http, sandbox_key)
        upload = f"/commbox/whatsapp/uploadmedia/{stream}"
        send = f"/commbox/v2/whatsapp/sendtemplatedmessage/{stream}"
        pic = {"pic": ("video_sample.mp4", MP4, "video/mp4")}
        media_id = (await http.post(upload, headers=auth, files=pic)).json()["data"][0]["id"]
        # Auth: none, a wrong key, the key without `Bearer`, another account's key.
        envelope(await http.post(upload, files=pic), 401)
        envelope(await http.post(upload, headers={"Authorization": "Bearer nope"}, files=pic), 401)
        envelope(await http.post(upload, headers={"Authorization": sandbox_key}, files=pic), 401)
        theirs = await http.post(upload, headers={"Authorization": f"Bearer {stranger}"}, files=pic)
        assert "stream" in envelope(theirs, 404)["description"]
        # Unknown stream; routes and methods CommBox does not have.
        envelope(await http.post("/commbox/whatsapp/uploadmedia/abc", headers=auth, files=pic), 404)
        assert envelope(await http.get("/commbox/nowhere", headers=auth), 404)["description"] == (
            "Not Found"
        )
        envelope(await http.get(upload, headers=auth), 404)
        # The form: no `pic` part, not a form at all, bytes that are not what they claim.
        envelope(await http.post(upload, headers=auth, files={"file": pic["pic"]}), 400)
        envelope(await http.post(upload, headers=auth, json={"pic": "x"}), 400)
        fake = {"pic": ("video_sample.mp4", b"%PDF-1.4\n%%EOF\n", "video/mp4")}
        envelope(await http.post(upload, headers=auth, files=fake), 400)

        video = {"type": "video", "video": {"id": media_id}}
        nameless = template(video)
        del nameless["template_data"]["template"]["name"]
        for data in (
            [],  # no recipient
            [template(video)] * 21,  # more than 20
            [nameless],  # the page's own 400 example: a missing template name
            [{"template_data": {"to": PHONE}}],  # no template
            [template({"type": "video", "video": {}})],  # neither id nor link
            [template({"type": "text", "text": "no file"})],  # no media header
            [{**template(video), "schedule": 1900000000}],  # wafile does not schedule
            [template(video, to="not a number")],
            [{"template_data": {"to": 19172537000, "template": {"name": "x"}}}],  # wrong type
        ):
            envelope(await http.post(send, headers=auth, json={"data": data}), 400)
        refused = await http.post(send, headers=auth, json={"data": [template(video, to="12")]})
        assert envelope(refused, 400)["data"][0]["recipient"] == "12"
        envelope(await http.post(send, headers=auth, content=b"{not json"), 400)
        unknown = template({"type": "video", "video": {"id": "med_nope"}})
        envelope(await http.post(send, headers=auth, json={"data": [unknown]}), 404)
        # Nothing was sent by any of these.
        assert (await http.get("/v1/messages", headers=auth)).json()["data"] == []
