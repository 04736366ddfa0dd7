"""Fixtures of the dialect conformance tests: the sandbox account's API key on a live
server (its WhatsApp sender talks to the embedded emulator) and a callback receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.callback_receiver import Receiver
from tests.integration.test_whatsapp_webhooks import sandbox_sender
from tests.support import AppServer, LiveServer


@pytest.fixture
async def sandbox_key(engine: AsyncEngine, live_server: LiveServer) -> str:
    """A wafile API key of the sandbox account (the vendors' credential)."""
    return await sandbox_sender(engine, live_server)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, AppServer]]:
    """A callback receiver on 127.0.0.1 that records every request."""
    rec = Receiver()
    with AppServer(rec.app) as server:
        yield rec, server
