"""A burst of webhooks larger than the emulator's connection pool: the wait for one of
its own connections is the emulator's queue (Meta queues its webhooks), never a failed
attempt. Before, thousands of statuses at once timed out in that wait (PoolTimeout)
and backed off for minutes, so a benchmark measured the emulator instead of wafile."""

from __future__ import annotations

import time
from typing import Any

import httpx

from wafile.emulator.whatsapp.webhooks import Delivery, post_with_retries
from wafile.emulator.whatsapp.world import Timing


async def test_the_wait_for_a_connection_has_no_timeout() -> None:
    seen: list[dict[str, Any]] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.extensions["timeout"]))
        return httpx.Response(200)

    delivery = Delivery(
        id=1,
        kind="status",
        phone_number_id="1",
        message_id="wamid.1",
        status="sent",
        url="http://127.0.0.1:9/hook",
        body=b"{}",
        signature="sha256=x",
    )
    timing = Timing(webhook_timeout=2.5)
    async with httpx.AsyncClient(transport=httpx.MockTransport(receiver)) as client:
        await post_with_retries(client, delivery, lambda: timing, time.time)
    assert delivery.outcome == "delivered"
    # The receiver's budget (connect, write, read) is the webhook timeout; the pool's none.
    assert seen == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": None}]
