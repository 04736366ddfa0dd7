"""Media routes over real HTTP: upload, retrieve URL, download (Bearer, 5-minute URLs),
delete; access tokens; Meta's types at upload; the version segment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    PNID,
    TOKEN,
    Harness,
    Servers,
    auth,
    emulator_running,
    graph_error,
    pdf,
    png,
    running_servers,
    sha256_hex,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


async def test_upload_retrieve_download_delete(wa: Harness) -> None:
    data = pdf(3000)
    up = await wa.upload(data, "application/pdf", "report.pdf")
    assert up.status_code == 200, up.text
    media_id = up.json()["id"]
    assert media_id.isdigit()

    info = await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN))
    assert info.status_code == 200, info.text
    body = info.json()
    assert body == {
        "messaging_product": "whatsapp",
        "url": body["url"],
        "mime_type": "application/pdf",
        "sha256": sha256_hex(data),
        "file_size": str(len(data)),
        "id": media_id,
    }
    assert body["url"].startswith(wa.base + "/")
    assert info.headers["facebook-api-version"] == "v23.0"

    got = await wa.client.get(body["url"], headers=auth(TOKEN))
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/pdf"
    graph_error(await wa.client.get(body["url"]), 401, 190)  # no token, no file
    graph_error(await wa.client.get(body["url"], headers=auth("wrong")), 401, 190)

    deleted = await wa.client.delete(f"/v23.0/{media_id}", headers=auth(TOKEN))
    assert deleted.status_code == 200 and deleted.json() == {"success": True}
    error = graph_error(await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN)), 400, 100)
    assert error["error_subcode"] == 33 and error["type"] == "GraphMethodException"
    graph_error(await wa.client.get(body["url"], headers=auth(TOKEN)), 404, 100)
    graph_error(await wa.client.delete(f"/v23.0/{media_id}", headers=auth(TOKEN)), 400, 100)


async def test_download_url_expires_after_five_minutes(wa: Harness) -> None:
    media_id = await wa.media_id(png(), "image/png")
    url = (await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN))).json()["url"]
    wa.clock.advance(299)
    assert (await wa.client.get(url, headers=auth(TOKEN))).status_code == 200
    wa.clock.advance(2)
    graph_error(await wa.client.get(url, headers=auth(TOKEN)), 404, 100)
    fresh = (await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN))).json()["url"]
    assert fresh != url
    assert (await wa.client.get(fresh, headers=auth(TOKEN))).status_code == 200


async def test_uploaded_media_expire_after_30_days(wa: Harness) -> None:
    media_id = await wa.media_id(pdf())
    wa.clock.advance(30 * 86400 + 1)
    graph_error(await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN)), 400, 100)


async def test_access_tokens(wa: Harness) -> None:
    data = pdf()
    graph_error(await wa.upload(data, token=""), 401, 190)
    graph_error(await wa.upload(data, token="not-a-token"), 401, 190)
    graph_error(await wa.upload(data, token="tok-1002"), 401, 190)  # 1002's token on 1001
    error = graph_error(await wa.upload(data, pnid="5555"), 400, 100)  # no such number
    assert error["error_subcode"] == 33
    resp = await wa.client.post(
        f"/v23.0/{PNID}/messages",
        json={"messaging_product": "whatsapp", "to": "12015550101", "text": {"body": "x"}},
    )
    error = graph_error(resp, 401, 190)
    assert resp.headers["www-authenticate"].startswith("OAuth")

    media_id = await wa.media_id(data)
    # Same WABA: another number's token may read it, unless phone_number_id says otherwise.
    assert (await wa.client.get(f"/v23.0/{media_id}", headers=auth("tok-1002"))).status_code == 200
    resp = await wa.client.get(
        f"/v23.0/{media_id}", params={"phone_number_id": "1002"}, headers=auth(TOKEN)
    )
    graph_error(resp, 400, 100)
    resp = await wa.client.get(
        f"/v23.0/{media_id}", params={"phone_number_id": PNID}, headers=auth(TOKEN)
    )
    assert resp.status_code == 200
    resp = await wa.client.delete(
        f"/v23.0/{media_id}", params={"phone_number_id": "1002"}, headers=auth(TOKEN)
    )
    graph_error(resp, 400, 100)

    # Another WABA sees nothing.
    await wa.control(
        "PUT",
        "/numbers/3003",
        json={
            "display_phone_number": "15550003003",
            "waba_id": "3003",
            "access_token": "tok-3003",
            "app_secret": "s",
        },
    )
    graph_error(await wa.client.get(f"/v23.0/{media_id}", headers=auth("tok-3003")), 400, 100)
    url = (await wa.client.get(f"/v23.0/{media_id}", headers=auth(TOKEN))).json()["url"]
    graph_error(await wa.client.get(url, headers=auth("tok-3003")), 404, 100)


async def test_unknown_media_id(wa: Harness) -> None:
    error = graph_error(await wa.client.get("/v23.0/123456789", headers=auth(TOKEN)), 400, 100)
    assert error["error_subcode"] == 33 and "123456789" in error["message"]
    graph_error(await wa.client.get("/v23.0/123456789"), 401, 190)


@pytest.mark.parametrize(
    ("data", "mime", "code"),
    [
        (b"PK\x03\x04zip", "application/zip", 100),
        (b"GIF89a....", "image/gif", 100),
        (png(), "application/pdf", 131053),  # content does not match the type
        (pdf(), "image/jpeg", 131053),
        (b"OggS" + b"\x00" * 24 + b"vorbis", "audio/ogg", 131053),  # Ogg, but not OPUS
        (b"", "application/pdf", 131053),
        (b"not really", DOCX, 131053),
    ],
)
async def test_upload_refuses_what_meta_refuses(
    wa: Harness, data: bytes, mime: str, code: int
) -> None:
    error = graph_error(await wa.upload(data, mime, "x"), 400, code)
    assert error["error_data"]["details"]


async def test_upload_form_fields(wa: Harness) -> None:
    url = f"/v23.0/{PNID}/media"
    files = {"file": ("a.pdf", pdf(), "application/pdf")}
    resp = await wa.client.post(url, headers=auth(TOKEN), files=files)
    graph_error(resp, 400, 131008)  # messaging_product
    resp = await wa.client.post(
        url, headers=auth(TOKEN), files=files, data={"messaging_product": "sms"}
    )
    graph_error(resp, 400, 100)
    resp = await wa.client.post(url, headers=auth(TOKEN), data={"messaging_product": "whatsapp"})
    graph_error(resp, 400, 131008)  # file
    resp = await wa.client.post(url, headers=auth(TOKEN), json={"file": "@/tmp/a.pdf"})
    graph_error(resp, 400, 131008)
    # Without `type`, the part's own content type counts.
    resp = await wa.client.post(
        url, headers=auth(TOKEN), files=files, data={"messaging_product": "whatsapp"}
    )
    assert resp.status_code == 200, resp.text


async def test_extra_document_types(wa: Harness) -> None:
    zipped = b"PK\x03\x04zip-archive"
    graph_error(await wa.upload(zipped, "application/zip", "a.zip"), 400, 100)
    resp = await wa.control(
        "PATCH", "/settings", json={"extra_document_types": ["application/zip"]}
    )
    assert resp.status_code == 200, resp.text
    media_id = await wa.media_id(zipped, "application/zip")
    await wa.control("PUT", "/phones/4915100000050", json={"window_open": True})
    ok = await wa.sent_id({"to": "4915100000050", "type": "document", "document": {"id": media_id}})
    await wa.wait_statuses(ok, ["sent", "delivered", "read"])
    bad = await wa.sent_id({"to": "4915100000050", "type": "image", "image": {"id": media_id}})
    assert (await wa.failed_error(bad))["code"] == 131053


@pytest.mark.parametrize("version", ["v19.0", "v23.0", "v100.12"])
async def test_any_graph_version(wa: Harness, version: str) -> None:
    media_id = await wa.media_id(pdf())
    resp = await wa.client.get(f"/{version}/{media_id}", headers=auth(TOKEN))
    assert resp.status_code == 200 and resp.headers["facebook-api-version"] == version


@pytest.mark.parametrize(
    "path", ["/latest/123", "/v23/123", "/23.0/1001/messages", "/nothing", "/v23.0/1/2/3"]
)
async def test_unknown_paths_are_graph_errors(wa: Harness, path: str) -> None:
    graph_error(await wa.client.get(path, headers=auth(TOKEN)), 400, 2500)


async def test_wrong_method(wa: Harness) -> None:
    resp = await wa.client.post("/v23.0/123", headers=auth(TOKEN))
    error = graph_error(resp, 400, 100)
    assert error["error_subcode"] == 33


async def test_phone_number_object(wa: Harness) -> None:
    resp = await wa.client.get(f"/v23.0/{PNID}", headers=auth(TOKEN))
    assert resp.status_code == 200
    assert resp.json()["display_phone_number"] == "15550001001" and resp.json()["id"] == PNID
    graph_error(await wa.client.get(f"/v23.0/{PNID}", headers=auth("tok-1002")), 401, 190)
