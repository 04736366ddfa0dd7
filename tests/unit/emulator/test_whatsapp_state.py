"""WhatsAppEmulator's life cycle across event loops (no network: a MockTransport)."""

from __future__ import annotations

import asyncio
import threading

import httpx

from wafile.emulator.whatsapp import WhatsAppEmulator, parse_world
from wafile.emulator.whatsapp.world import Timing

WORLD = {
    "numbers": [
        {
            "phone_number_id": "1001",
            "display_phone_number": "15550001001",
            "waba_id": "2001",
            "access_token": "tok",
            "app_secret": "sec",
            "webhook_url": "http://hooks.test/in",
        }
    ]
}


def make(seen: list[bytes], answer: int = 200) -> WhatsAppEmulator:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(answer)

    return WhatsAppEmulator(
        parse_world(WORLD),
        timing=Timing(scale=1.0, retry_delays=(60.0,)),
        transport=httpx.MockTransport(handler),
    )


async def test_aclose_from_another_loop_while_the_serving_loop_runs() -> None:
    seen: list[bytes] = []
    emulator = make(seen, answer=500)  # the first post fails; the retry waits 60 s
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        async def inbound() -> None:
            emulator.phone_send("4915100000001", {"to": "1001", "text": "hi"})

        asyncio.run_coroutine_threadsafe(inbound(), loop).result(timeout=5)
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert len(seen) == 1 and emulator.pending_tasks == 1
        await emulator.aclose()  # runs on `loop`, not here
        assert emulator.pending_tasks == 0
        [entry] = emulator.log
        assert entry.outcome == "cancelled"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


async def test_aclose_after_the_serving_loop_ended() -> None:
    """A mounted emulator whose host forgot aclose(): the loop is gone, closing still works."""
    seen: list[bytes] = []
    emulator = make(seen, answer=500)

    async def serve() -> None:
        emulator.phone_send("4915100000001", {"to": "1001", "text": "hi"})
        await asyncio.sleep(0.05)  # the post failed; the retry is pending when the loop ends

    await asyncio.to_thread(asyncio.run, serve())
    assert len(seen) == 1
    await emulator.aclose()
    assert emulator.pending_tasks == 0
    await emulator.aclose()  # twice is fine
    emulator.reset()
    assert list(emulator.log) == []


async def test_reset_restores_the_initial_world() -> None:
    emulator = make([])
    emulator.put_phone("4915100000009", {"on_whatsapp": False})
    emulator.update_settings({"pair_rate_limit": False, "timing": {"scale": 0}})
    emulator.reset()
    assert emulator.world.phones == ()
    assert emulator.settings.pair_rate_limit is True and emulator.timing.scale == 1.0
    await emulator.aclose()
