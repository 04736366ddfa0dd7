"""Batched status webhooks over real HTTP: with `webhook_batch_max` > 1 the emulator
posts several statuses of one number in one signed envelope, as Meta does, retried as
a unit; each message's statuses still arrive in order, and the delivery log finds a
status by message id inside a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.emulator.test_whatsapp_harness import (
    OPEN_PHONE,
    PNID,
    Harness,
    Post,
    Servers,
    emulator_running,
    eventually,
    running_servers,
    signed_ok,
)


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


def text(body: str) -> dict[str, Any]:
    return {"to": OPEN_PHONE, "type": "text", "text": {"body": body}}


def statuses(post: Post) -> list[tuple[str, str]]:
    return [(s["id"], s["status"]) for s in post.value.get("statuses", [])]


async def batching(wa: Harness, most: int, wait: float) -> None:
    resp = await wa.control(
        "PATCH", "/settings", json={"webhook_batch_max": most, "webhook_batch_wait": wait}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["webhook_batch_max"] == most
    assert resp.json()["webhook_batch_wait"] == wait


async def all_read(wa: Harness, wamids: list[str]) -> None:
    def done() -> bool:
        seen = [pair for post in wa.receiver.accepted() for pair in statuses(post)]
        return all((m, "read") in seen for m in wamids)

    await eventually(done)


async def log(wa: Harness, **filters: str) -> list[dict[str, Any]]:
    resp = await wa.control("GET", "/webhooks", params=filters)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["deliveries"])


async def test_off_by_default_one_status_per_post(wa: Harness) -> None:
    settings = (await wa.control("GET", "/settings")).json()
    assert settings["webhook_batch_max"] == 1
    wamid = await wa.sent_id(text("one"))
    await all_read(wa, [wamid])
    assert [statuses(p) for p in wa.receiver.accepted()] == [
        [(wamid, "sent")],
        [(wamid, "delivered")],
        [(wamid, "read")],
    ]
    entries = await log(wa, message_id=wamid)
    assert [(e["message_id"], e["status"]) for e in entries] == [
        (wamid, "sent"),
        (wamid, "delivered"),
        (wamid, "read"),
    ]
    assert entries[0]["statuses"] == [{"message_id": wamid, "status": "sent"}]


async def test_a_full_batch_is_one_signed_post(wa: Harness) -> None:
    # A long wait: only filling the batch (3 statuses) posts it early.
    await batching(wa, 3, 2.0)
    wamids = list(await asyncio.gather(*(wa.sent_id(text(f"m{i}")) for i in range(3))))
    await all_read(wa, wamids)
    posts = wa.receiver.accepted()
    # sent x3, delivered x3, read x3: three POSTs of three, each signed over its bytes.
    assert len(posts) == 3
    assert [sorted(s for _, s in statuses(p)) for p in posts] == [
        ["sent"] * 3,
        ["delivered"] * 3,
        ["read"] * 3,
    ]
    for post in posts:
        assert signed_ok(post)
        assert sorted(m for m, _ in statuses(post)) == sorted(wamids)
        assert post.value["metadata"]["phone_number_id"] == PNID
    # The log: a batch names no single message; `statuses` lists them, and the
    # message_id/status filters look inside it.
    entries = await log(wa, kind="status")
    assert len(entries) == 3
    assert all(e["message_id"] is None and e["status"] is None for e in entries)
    assert [len(e["statuses"]) for e in entries] == [3, 3, 3]
    [delivered] = await log(wa, message_id=wamids[1], status="delivered")
    assert {"message_id": wamids[1], "status": "delivered"} in delivered["statuses"]
    assert len(await log(wa, message_id=wamids[0])) == 3


async def test_the_wait_posts_a_batch_that_did_not_fill(wa: Harness) -> None:
    await batching(wa, 50, 0.05)
    wamid = await wa.sent_id(text("alone"))
    await all_read(wa, [wamid])
    # Each status waited for company, found none, and went alone, in order.
    assert [statuses(p) for p in wa.receiver.accepted()] == [
        [(wamid, "sent")],
        [(wamid, "delivered")],
        [(wamid, "read")],
    ]
    [entry] = await log(wa, message_id=wamid, status="sent")
    assert entry["message_id"] == wamid and entry["status"] == "sent"


async def test_a_batch_is_retried_as_a_unit(wa: Harness) -> None:
    await batching(wa, 2, 2.0)
    wa.receiver.fail_next = 1
    wamids = list(await asyncio.gather(*(wa.sent_id(text(f"r{i}")) for i in range(2))))
    await all_read(wa, wamids)
    first, retried = wa.receiver.posts[:2]
    assert first.answered == 500 and retried.answered == 200
    assert retried.body == first.body  # the same bytes (and signature) again
    assert sorted(statuses(retried)) == sorted((m, "sent") for m in wamids)
    # Each message's statuses still arrive sent -> delivered -> read.
    for wamid in wamids:
        seen = [s for post in wa.receiver.accepted() for m, s in statuses(post) if m == wamid]
        assert seen == ["sent", "delivered", "read"]
    [entry] = await log(wa, message_id=wamids[0], status="sent")
    assert [a["status_code"] for a in entry["attempts"]] == [500, 200]
    assert entry["outcome"] == "delivered"


async def test_bad_batch_settings_are_refused(wa: Harness) -> None:
    for doc, field in (
        ({"webhook_batch_max": 0}, "settings.webhook_batch_max"),
        ({"webhook_batch_wait": -1}, "settings.webhook_batch_wait"),
    ):
        resp = await wa.control("PATCH", "/settings", json=doc)
        assert resp.status_code == 400, resp.text
        assert field in resp.json()["error"]["message"]
