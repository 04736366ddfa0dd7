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


async def test_sandbox_serves_the_sms_emulator(live_server: LiveServer) -> None:
    creds = sandbox_credentials(TEST_SECRET)
    base = f"/_emulator/sms/2010-04-01/Accounts/{creds.sms_account_sid}"
    auth = (creds.sms_account_sid, creds.sms_auth_token)
    form = {"To": "+4917612345678", "From": creds.sms_from_number, "Body": "Ihre Datei: x"}
    async with live_server.client() as http:
        refused = await http.post(f"{base}/Messages.json", data=form, auth=(auth[0], "wrong"))
        assert refused.status_code == 401 and refused.json()["code"] == 20003
        sent = await http.post(f"{base}/Messages.json", data=form, auth=auth)
        assert sent.status_code == 201, sent.text
        message = sent.json()
        assert message["sid"].startswith("SM") and message["num_segments"] == "1"
        # The resource's own URI resolves against wafile's address, prefix included.
        assert message["uri"].startswith(f"{base}/Messages/")
        again = await http.get(message["uri"], auth=auth)
        assert again.status_code == 200 and again.json()["sid"] == message["sid"]
        inbox = (await http.get("/_emulator/sms/_control/phones/+4917612345678/inbox")).json()
        assert "Ihre Datei: x" in str(inbox)


async def test_no_emulators_outside_sandbox_mode(settings: Settings, engine: AsyncEngine) -> None:
    with LiveServer(settings.with_overrides(sandbox=False)) as server:
        async with server.client() as http:
            for prefix in ("/_emulator/whatsapp", "/_emulator/sms"):
                resp = await http.get(f"{prefix}/_control/world")
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
