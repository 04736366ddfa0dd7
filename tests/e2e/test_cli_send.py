"""`wafile send FILE --to NUMBER --wait` as a user runs it, against a real server whose
sandbox carries the WhatsApp emulator."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.test_cli import run
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import LiveServer

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"s" * 2000 + b"\ntrailer<<>>\n%%EOF\n"


async def test_send_and_wait_until_delivered(
    tmp_path: Path, live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await sandbox_sender(engine, live_server)
    env = {"WAFILE_URL": live_server.url, "WAFILE_API_KEY": key}
    file = tmp_path / "Befund.pdf"
    file.write_bytes(PDF)
    # +12015550104 never wrote in: the sandbox sender's default template carries the PDF.
    sent = run(tmp_path, "send", str(file), "--to", "+1 201 555 0104", "--wait", "--json", env=env)
    message = json.loads(sent.stdout)
    assert message["status"] == "delivered", sent.stderr
    assert message["to"] == "+12015550104" and message["filename"] == "Befund.pdf"
    assert "delivered" in sent.stderr  # the live status line
    assert key not in sent.stdout + sent.stderr

    not_on_whatsapp = run(
        tmp_path, "send", str(file), "--to", "+12015550103", "--wait", env=env, ok=False
    )
    assert not_on_whatsapp.returncode == 1
    assert "failed" in not_on_whatsapp.stdout and "131026" in not_on_whatsapp.stderr

    # With an SMS fallback the same number gets the file after all, by SMS.
    by_sms = run(
        tmp_path,
        "send",
        str(file),
        "--to",
        "+12015550103",
        "--sms-after",
        "60",
        "--wait",
        "--json",
        env=env,
    )
    fell_back = json.loads(by_sms.stdout)
    assert fell_back["status"] == "delivered", by_sms.stderr
    assert [a["channel"] for a in fell_back["attempts"]] == ["whatsapp", "sms"]
    assert "sms: delivered" in by_sms.stderr

    bad = run(tmp_path, "send", str(file), "--to", "12345", env=env, ok=False)
    assert bad.returncode == 1 and "422" in bad.stderr and "Traceback" not in bad.stderr
