"""Sandbox mode: `wafile serve` carries the WhatsApp emulator under `/_emulator/whatsapp`,
wired with credentials derived from the server secret, over real HTTP."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import TEST_SECRET, LiveServer
from wafile.config import Settings
from wafile.services.sandbox import sandbox_credentials

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def test_sandbox_serves_the_whatsapp_emulator(live_server: LiveServer) -> None:
    creds = sandbox_credentials(TEST_SECRET)
    pnid = creds.whatsapp_phone_number_id
    graph = f"/_emulator/whatsapp/v23.0/{pnid}"
    auth = {"Authorization": f"Bearer {creds.whatsapp_access_token}"}
    async with live_server.client() as http:
        refused = await http.post(f"{graph}/media", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == 190

        uploaded = await http.post(
            f"{graph}/media",
            headers=auth,
            data={"messaging_product": "whatsapp", "type": "application/pdf"},
            files={"file": ("invoice.pdf", PDF, "application/pdf")},
        )
        assert uploaded.status_code == 200, uploaded.text
        media_id = uploaded.json()["id"]
        looked_up = (await http.get(f"/_emulator/whatsapp/v23.0/{media_id}", headers=auth)).json()
        # URLs the emulator hands out carry the mount prefix.
        assert looked_up["url"].startswith(f"{live_server.url}/_emulator/whatsapp/")
        download = await http.get(looked_up["url"], headers=auth)
        assert download.content == PDF

        # A magic number must write first (the 24-hour window), then takes the file.
        phone = "12015550101"
        control = "/_emulator/whatsapp/_control"
        wrote = await http.post(
            f"{control}/phones/{phone}/messages", json={"to": pnid, "text": "hello"}
        )
        assert wrote.status_code in (200, 201), wrote.text
        sent = await http.post(
            f"{graph}/messages",
            headers=auth,
            json={
                "messaging_product": "whatsapp",
                "to": phone,
                "type": "document",
                "document": {
                    "id": media_id,
                    "filename": "Rechnung.pdf",
                    "caption": "Ihre Rechnung",
                },
            },
        )
        assert sent.status_code == 200, sent.text
        inbox = (await http.get(f"{control}/phones/{phone}/inbox")).json()["messages"]
        assert [(m["type"], m["filename"]) for m in inbox] == [("document", "Rechnung.pdf")]

        # The sandbox templates are there, approved.
        templates = (await http.get(f"{control}/templates")).json()
        names = {(t["name"], t["language"], t["status"]) for t in templates["templates"]}
        assert {
            ("file_delivery", "en_US", "APPROVED"),
            ("image_delivery", "en_US", "APPROVED"),
            ("video_delivery", "en_US", "APPROVED"),
        } <= names


async def test_no_emulators_outside_sandbox_mode(settings: Settings, engine: AsyncEngine) -> None:
    with LiveServer(settings.with_overrides(sandbox=False)) as server:
        async with server.client() as http:
            resp = await http.get("/_emulator/whatsapp/_control/world")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"


def test_credentials_are_stable_and_depend_on_the_secret() -> None:
    first, again = sandbox_credentials(TEST_SECRET), sandbox_credentials(TEST_SECRET)
    other = sandbox_credentials(TEST_SECRET + "!")
    assert first == again
    assert first.whatsapp_access_token != other.whatsapp_access_token
    assert first.sms_auth_token != other.sms_auth_token
    assert first.sms_account_sid.startswith("AC") and len(first.sms_account_sid) == 34
    assert first.whatsapp_app_secret not in repr(first)
