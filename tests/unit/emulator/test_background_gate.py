"""The emulators' HTTP client lets at most a fixed number of requests into its
connection pool at once (a burst of webhooks otherwise made httpcore's queue scans
most of the emulator's CPU); the others wait their turn and all go out."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from wafile.emulator.background import GatedTransport


async def test_a_burst_never_has_more_than_the_limit_in_flight() -> None:
    in_flight = peak = 0

    async def receiver(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return httpx.Response(200, text=request.url.path)

    gated = GatedTransport(httpx.MockTransport(receiver), limit=3)
    async with httpx.AsyncClient(transport=gated, base_url="http://hooks.test") as client:
        answers = await asyncio.gather(*(client.post(f"/{i}") for i in range(40)))
    assert [a.text for a in answers] == [f"/{i}" for i in range(40)]
    assert peak == 3


async def test_a_failed_request_frees_its_turn() -> None:
    async def refuses(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    gated = GatedTransport(httpx.MockTransport(refuses), limit=1)
    async with httpx.AsyncClient(transport=gated) as client:
        for _ in range(3):  # with the turn kept, the second would wait for ever
            with pytest.raises(httpx.ConnectError):
                await asyncio.wait_for(client.get("http://hooks.test/"), 5)


def test_the_limit_is_at_least_one() -> None:
    with pytest.raises(ValueError):
        GatedTransport(httpx.MockTransport(lambda r: httpx.Response(200)), limit=0)
