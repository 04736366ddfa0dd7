"""services/recent.py: reads reused for a few seconds, per database."""

from __future__ import annotations

from pathlib import Path

import pytest

from wafile.db.engine import create_engine, session_factory
from wafile.services import recent
from wafile.services.recent import Recent


class Loads:
    def __init__(self, value: object) -> None:
        self.value, self.calls = value, 0

    async def __call__(self) -> object:
        self.calls += 1
        return self.value


async def test_reuses_within_ttl_and_keys_by_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [100.0]
    monkeypatch.setattr(recent.time, "monotonic", lambda: clock[0])
    one, two = (create_engine(f"sqlite+aiosqlite:///{tmp_path / n}.db") for n in ("one", "two"))
    cache, load = Recent(ttl=5), Loads("sender")
    async with session_factory(one)() as a, session_factory(two)() as b:
        assert await cache.get(a, ("id", "snd_1"), load) == "sender"
        assert await cache.get(a, ("id", "snd_1"), load) == "sender"
        assert load.calls == 1
        await cache.get(b, ("id", "snd_1"), load)  # the same id in another database
        assert load.calls == 2
        clock[0] += 5  # expired
        await cache.get(a, ("id", "snd_1"), load)
        assert load.calls == 3
        cache.clear()
        await cache.get(a, ("id", "snd_1"), load)
        assert load.calls == 4
        missing = Loads(None)  # an absent row is looked up again next time
        await cache.get(a, ("id", "snd_2"), missing)
        await cache.get(a, ("id", "snd_2"), missing)
        assert missing.calls == 2
    await one.dispose()
    await two.dispose()
