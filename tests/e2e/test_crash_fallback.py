"""`wafile serve` killed with SIGKILL while fallback deadlines and callbacks are pending
(issue 7): restarted, every deadline still fires, every SMS goes out, and every event
reaches the business, in sequence order, once its receiver is back up.

The server is a process of its own (sandbox mode: embedded worker and emulators), so
the kill is real: nothing of its memory survives, only the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from tests.e2e.processes import Process, wait_answering
from tests.e2e.test_worker import child_env
from tests.integration.callback_receiver import Receiver, verified
from tests.support import AppServer, eventually, free_port, make_key
from wafile.config import Settings

MESSAGES = 6
SILENT = "+12015550102"  # the sandbox WhatsApp emulator never reports it delivered
FALLBACK = 6.0  # seconds: long enough that the kill comes first
# Callback retries every second, then every 2 s: the receiver's outage fits in them.
SCHEDULE = [0.0] + [1.0] * 20 + [2.0] * 20
WAIT = 60.0
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%" + b"z" * 3000 + b"\ntrailer<<>>\n%%EOF\n"


def start(settings: Settings, tmp_path: Path, port: int, name: str) -> Process:
    env = {
        **child_env(settings),
        "WAFILE_CALLBACK_RETRY_SCHEDULE": json.dumps(SCHEDULE),
        "WAFILE_WORKER_POLL_SECONDS": "0.2",
        "WAFILE_JOB_LEASE_SECONDS": "5",
    }
    server = Process(["serve", "--port", str(port)], env, tmp_path, name)
    wait_answering(server, f"http://127.0.0.1:{port}/healthz")
    return server


async def test_deadlines_and_callbacks_survive_a_killed_server(
    settings: Settings, engine: AsyncEngine, tmp_path: Path, processes: list[Process]
) -> None:
    key = await make_key(engine, "sandbox")
    rec = Receiver()
    rec.answers["/cb"] = Response("down", status_code=500)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with AppServer(rec.app) as receiver:
        processes.append(first := start(settings, tmp_path, port, "first"))
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as http:
            secret = (await http.post("/v1/account/callback-secret")).json()["secret"]
            up = await http.post("/v1/media", files={"file": ("Brief.pdf", PDF, "application/pdf")})
            assert up.status_code == 201, up.text
            plan = [{"channel": "whatsapp", "fallback_time": FALLBACK}, {"channel": "sms"}]
            ids = []
            for i in range(MESSAGES):
                sent = await http.post(
                    "/v1/messages",
                    json={
                        "to": SILENT,
                        "media_id": up.json()["id"],
                        "channels": plan,
                        "reference": f"crash-{i}",
                        "callback_url": f"{receiver.url}/cb",
                    },
                )
                assert sent.status_code == 202, sent.text
                ids.append(sent.json()["id"])

            async def whatsapp_sent() -> bool:
                docs = [await _message(http, m) for m in ids]
                return all(d["attempts"][0]["status"] == "sent" for d in docs)

            await eventually(whatsapp_sent, "every WhatsApp attempt sent", seconds=WAIT)
            assert len(rec.at("/cb")) > 0  # callbacks were tried, and failed
            before = [await _message(http, m) for m in ids]
            assert all(len(d["attempts"]) == 1 for d in before)  # no deadline fired yet
            first.kill()

            processes.append(start(settings, tmp_path, port, "second"))
            with rec.lock:  # the receiver is back: from now on it records what it accepts
                del rec.answers["/cb"]
                rec.got.clear()

            async def all_delivered() -> bool:
                docs = [await _message(http, m) for m in ids]
                return all(d["status"] == "delivered" for d in docs)

            await eventually(all_delivered, "every message delivered by SMS", seconds=WAIT)
            for m in ids:
                wa, sms = (await _message(http, m))["attempts"]
                assert wa["status"] == "timed_out" and sms["status"] == "delivered"

            async def all_called_back() -> bool:
                events = _accepted_events(rec, secret)
                return all(
                    any(e["type"] == "message.delivered" for e in events.get(m, [])) for m in ids
                )

            await eventually(all_called_back, "every event delivered", seconds=WAIT)
            for m, events in _accepted_events(rec, secret).items():
                sequences = sorted({e["sequence"] for e in events})
                assert sequences == list(range(1, len(sequences) + 1)), m
                ordered = [e["sequence"] for e in events]
                assert ordered == sorted(ordered), f"{m}: delivered out of order: {ordered}"


async def _message(http: httpx.AsyncClient, message_id: str) -> dict[str, Any]:
    resp = await http.get(f"/v1/messages/{message_id}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _accepted_events(rec: Receiver, secret: str) -> dict[str, list[dict[str, Any]]]:
    """The events the receiver accepted (after its outage), per message, in the order
    they arrived."""
    by_message: dict[str, list[dict[str, Any]]] = {}
    for event in verified(secret, rec.at("/cb")):
        by_message.setdefault(event["message"]["id"], []).append(event)
    return by_message
