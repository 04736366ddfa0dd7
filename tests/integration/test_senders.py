"""`/v1/senders` over real HTTP on SQLite and PostgreSQL: credentials go in, never out."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import TEST_SECRET, LiveServer, assert_problem, make_key
from wafile.crypto import Sealer
from wafile.db.engine import session_factory, transaction
from wafile.db.tables import SenderRow

TOKEN = "EAAG-very-secret-token"
APP_SECRET = "app-secret-0123456789"


def body(**extra: object) -> dict[str, object]:
    return {
        "name": "main",
        "phone_number_id": "1001",
        "waba_id": "2001",
        "display_phone_number": "+1 555 000 1001",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        **extra,
    }


async def test_add_list_get_remove_and_secrets_stay_sealed(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    other = await make_key(engine, "other")
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        created = await http.post("/v1/senders", json=body())
        assert created.status_code == 201, created.text
        sender = created.json()
        assert sender["default"] is True  # the first sender is the default
        assert sender["webhook_url"] == f"{live_server.url}/webhooks/whatsapp/{sender['id']}"
        generated = sender["verify_token"]
        assert generated and len(generated) >= 24
        chosen = await http.post("/v1/senders", json=body(name="second", verify_token="mine"))
        assert chosen.json()["verify_token"] is None  # the caller knows it already
        assert chosen.json()["default"] is False

        listed = await http.get("/v1/senders")
        shown = json.dumps(listed.json())
        assert [s["name"] for s in listed.json()["data"]] == ["main", "second"]
        for secret in (TOKEN, APP_SECRET, generated, "mine"):
            assert secret not in shown
        one = await http.get("/v1/senders/main")
        assert one.json()["phone_number_id"] == "1001" and "verify_token" not in one.json()

        assert_problem(await http.post("/v1/senders", json=body()), 409, "sender_exists")
        bad = await http.post("/v1/senders", json=body(name="x", phone_number_id="abc"))
        assert "phone_number_id" in assert_problem(bad, 422, "validation_error")["detail"]
        assert TOKEN not in bad.text

        # Another account sees none of them.
        theirs = await http.get("/v1/senders", headers={"Authorization": f"Bearer {other}"})
        assert theirs.json()["data"] == []
        stranger = await http.get("/v1/senders/main", headers={"Authorization": f"Bearer {other}"})
        assert_problem(stranger, 404, "sender_not_found")

        # A new default takes the mark from the old one.
        third = await http.post("/v1/senders", json=body(name="third", default=True))
        defaults = [
            s["name"] for s in (await http.get("/v1/senders")).json()["data"] if s["default"]
        ]
        assert third.status_code == 201 and defaults == ["third"]

        assert (await http.delete("/v1/senders/second")).status_code == 204
        assert_problem(await http.get("/v1/senders/second"), 404, "sender_not_found")
        assert_problem(await http.delete("/v1/senders/second"), 404, "sender_not_found")

    async with transaction(session_factory(engine)) as session:
        rows = (await session.scalars(select(SenderRow).order_by(SenderRow.name))).all()
    stored = " ".join(f"{r.config} {r.sealed_secrets}" for r in rows)
    assert TOKEN not in stored and APP_SECRET not in stored
    opened = json.loads(Sealer(TEST_SECRET).open(rows[0].sealed_secrets))
    assert opened == {"access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": generated}


async def test_senders_need_a_key(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        assert_problem(await http.get("/v1/senders"), 401, "unauthorized")
        assert_problem(await http.post("/v1/senders", json=body()), 401, "unauthorized")
