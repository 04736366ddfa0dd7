"""Shared by the benchmarks: a throw-away account and key, and `wafile serve` as a
separate process (as in production)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress

from tests.support import TEST_SECRET, make_settings
from wafile.db import migrate
from wafile.db.engine import create_engine, session_factory, transaction
from wafile.services.accounts import accounts
from wafile.services.api_keys import api_keys

__all__ = [
    "all_messages",
    "cpu_seconds",
    "prepare",
    "serve",
    "wait_settled",
    "wait_until_up",
    "worker",
]


async def prepare(database_url: str, tmp: Path) -> str:
    """Migrate the database and return an API key of a fresh `bench` account."""
    settings = make_settings(tmp, database_url)
    engine = create_engine(settings.effective_database_url)
    await migrate.upgrade(engine)
    async with transaction(session_factory(engine)) as s:
        await accounts.ensure(s, "bench", now=datetime.now(UTC))
        key = (await api_keys.create(s, account_name="bench", now=datetime.now(UTC))).plaintext
    await engine.dispose()
    return key


def _env(database_url: str, tmp: Path, settings: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("WAFILE_")},
        "WAFILE_DATABASE_URL": database_url,
        "WAFILE_DATA_DIR": str(tmp / "var"),
        "WAFILE_SECRET_KEY": TEST_SECRET,
        "WAFILE_SANDBOX": "false",
        "WAFILE_LOG_LEVEL": "warning",
        **{f"WAFILE_{k.upper()}": v for k, v in settings.items()},  # may turn sandbox on
    }


def serve(database_url: str, tmp: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """`wafile serve` on 127.0.0.1:port; `settings` are extra WAFILE_* values."""
    cmd = [sys.executable, "-m", "wafile", "serve", "--port", str(port)]
    # stdout carries the sandbox's first API key, which the benchmarks make their own.
    env = _env(database_url, tmp, settings)
    proc = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
    wait_until_up(proc, f"http://127.0.0.1:{port}/healthz")
    return proc


def worker(database_url: str, tmp: Path, **settings: str) -> subprocess.Popen[bytes]:
    """`wafile worker` (PostgreSQL); `settings` are extra WAFILE_* values."""
    cmd = [sys.executable, "-m", "wafile", "worker"]
    return subprocess.Popen(cmd, env=_env(database_url, tmp, settings), cwd=tmp)


def wait_until_up(proc: subprocess.Popen[bytes], url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server behind {url} did not start")


async def all_messages(http: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    """Every message of the bench account (matching `filters`), page by page."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **filters, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/messages", params=params)).json()
        found += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return found


async def wait_settled(
    http: httpx.AsyncClient, total: int, seconds: float, progress: Progress, label: str
) -> list[dict[str, Any]]:
    """Every message, once none is still accepted or in progress.

    The polls read the account's usage counts (`GET /v1/usage`: a few aggregate
    queries), so that watching a run costs the server little next to the run itself:
    listing the unsettled messages, as they did, cost serve a page of JSON per 200
    of them every second once a backlog built up."""
    task = progress.add_task(label, total=total)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        usage = await http.get("/v1/usage")
        usage.raise_for_status()
        pending = int(usage.json()["messages"]["in_progress"])
        progress.update(task, completed=total - pending)
        if pending == 0:
            return await all_messages(http)
        await asyncio.sleep(1)
    raise SystemExit(f"messages still unsettled after {seconds:.0f} s")


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
