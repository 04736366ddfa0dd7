"""`/v1/providers` over real HTTP on SQLite and PostgreSQL: Sinch's shapes, names and
overwrite rule, secrets masked and sealed at rest, other accounts see 404, and a
provider restricted to some hosts refuses to send its credential anywhere else."""

from __future__ import annotations

import socket

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support import LiveServer, assert_problem, make_key

BASIC = {
    "name": "your-basic-provider",
    "type": "www",
    "config": {"basic": {"username": "user", "password": "AbCdEf123456"}},
}
BEARER = {"name": "bearer_media_provider_name", "type": "www", "config": {"bearer": "AbCdEf123xyz"}}


async def test_crud_masking_overwrite_and_isolation(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key, other_key = await make_key(engine), await make_key(engine, "other")
    async with (
        live_server.client(headers={"Authorization": f"Bearer {key}"}) as http,
        live_server.client(headers={"X-API-Key": other_key}) as other,
    ):
        created = await http.post("/v1/providers", json=BASIC)
        assert created.status_code == 201, created.text
        assert created.json()["config"] == {"basic": {"username": "user", "password": "••••6"}}
        assert (await http.post("/v1/providers", json=BEARER)).status_code == 201

        listed = (await http.get("/v1/providers")).json()["data"]
        assert [p["name"] for p in listed] == [
            "bearer_media_provider_name",
            "your-basic-provider",
        ]
        assert listed[0]["config"] == {"bearer": "••••z"} and listed[0]["type"] == "www"
        assert "AbCdEf" not in (await http.get("/v1/providers")).text

        # Reusing a name replaces the provider (Sinch): 200, one provider of that name.
        replaced = await http.post(
            "/v1/providers",
            json={**BASIC, "config": {"bearer": "new-token-9"}, "allowed": ["files.example"]},
        )
        assert replaced.status_code == 200, replaced.text
        body = replaced.json()
        assert body["config"] == {"bearer": "••••9"} and body["allowed"] == ["files.example"]
        assert body["created_at"] == created.json()["created_at"]
        assert len((await http.get("/v1/providers")).json()["data"]) == 2
        got = await http.get("/v1/providers/your-basic-provider")
        assert got.json()["config"] == {"bearer": "••••9"}

        # Other accounts see nothing of it.
        assert (await other.get("/v1/providers")).json()["data"] == []
        assert_problem(
            await other.get("/v1/providers/your-basic-provider"), 404, "provider_not_found"
        )
        resp = await other.delete("/v1/providers/your-basic-provider")
        assert_problem(resp, 404, "provider_not_found")

        assert (await http.delete("/v1/providers/your-basic-provider")).status_code == 204
        resp = await http.delete("/v1/providers/your-basic-provider")
        assert_problem(resp, 404, "provider_not_found")
        assert len((await http.get("/v1/providers")).json()["data"]) == 1

    # At rest the secret is sealed: not in any column in clear.
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM media_providers"))).all()
    assert rows and all("AbCdEf123xyz" not in str(tuple(r)) for r in rows)


async def test_invalid_providers_are_refused(live_server: LiveServer, engine: AsyncEngine) -> None:
    key = await make_key(engine)
    bad = [
        {**BASIC, "name": "has space"},
        {**BASIC, "name": "digits1"},
        {**BASIC, "name": "x" * 201},
        {**BASIC, "type": "ftp"},
        {**BASIC, "config": {}},
        {**BASIC, "config": {"bearer": "t", "basic": {"username": "u", "password": "p"}}},
        {**BASIC, "config": {"basic": {"username": "a:b", "password": "p"}}},
        {**BASIC, "config": {"bearer": "two words"}},
        {**BASIC, "allowed": ["ftp://files.example/"]},
    ]
    async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
        for body in bad:
            resp = await http.post("/v1/providers", json=body)
            assert_problem(resp, 422, "validation_error")
            assert "AbCdEf" not in resp.text
        assert (await http.get("/v1/providers")).json()["data"] == []
        assert_problem(
            await http.post("/v1/providers", json=BASIC, headers={"Authorization": ""}),
            401,
            "unauthorized",
        )


async def test_a_restricted_provider_never_sends_its_credential_elsewhere(
    live_server: LiveServer, engine: AsyncEngine
) -> None:
    key = await make_key(engine)
    with socket.socket() as listener:  # an origin outside the restriction: never reached
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        async with live_server.client(headers={"Authorization": f"Bearer {key}"}) as http:
            await http.post(
                "/v1/providers",
                json={**BEARER, "allowed": ["https://files.example/exports/"]},
            )
            resp = await http.post(
                "/v1/media:fetch",
                json={"url": f"http://127.0.0.1:{port}/x.pdf", "provider": BEARER["name"]},
            )
            problem = assert_problem(resp, 422, "outbound_refused")
            assert "may only fetch from https://files.example/exports/" in problem["detail"]
        try:
            listener.accept()
            reached = True
        except BlockingIOError:
            reached = False
    assert not reached
