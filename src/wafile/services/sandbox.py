"""Sandbox bootstrap: the `sandbox` account and its first key, made on first start."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.services.accounts import accounts
from wafile.services.api_keys import CreatedKey, api_keys

__all__ = ["SANDBOX_ACCOUNT", "ensure_sandbox"]

SANDBOX_ACCOUNT = "sandbox"


async def ensure_sandbox(session: AsyncSession, *, now: datetime) -> CreatedKey | None:
    """Create the sandbox account with one key; the key only when just created.

    The key is shown once, like every key: later starts return None.
    """
    _, created = await accounts.ensure(session, SANDBOX_ACCOUNT, now=now)
    if not created:
        return None
    return await api_keys.create(
        session, account_name=SANDBOX_ACCOUNT, name="sandbox (first start)", now=now
    )
