"""Send rate repository: each sender's GCRA bucket (`core/rate_limit.py`) as a row.

A grant is one statement: an upsert that creates the row on a sender's first send and
otherwise moves `next_at_us` only when the slot is within reach (the `WHERE` of the
`DO UPDATE`), returning the new value; no row back means refused. On PostgreSQL the
upsert locks the sender's row (even when its `WHERE` is false) until the transaction
ends, so concurrent workers on any number of machines take slots one after the other
and never both read the same `next_at_us`; on SQLite, BEGIN IMMEDIATE serialises the
writers. A refusal then moves the line (`retry_at_us`) under that same lock.

Run it in a transaction of its own that commits at once: the row stays locked until
the commit, and every send of the sender waits for it.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    SQLColumnExpression,
    Table,
    case,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.rate_limit import (
    Bucket,
    Decision,
    Granted,
    Refused,
    SendRate,
    grant_limit,
    granted_slot,
)
from wafile.db.tables import SendRateRow

__all__ = ["SendRateRepository"]

# The table, not the mapped class: no ORM DML path on a statement run for every send.
_rates = cast(Table, SendRateRow.__table__)


def _int(value: int) -> ColumnElement[int]:
    # Typed, so PostgreSQL never takes a microsecond count for a 32-bit integer.
    return literal(value, BigInteger())


def _later(a: SQLColumnExpression[int], b: SQLColumnExpression[int]) -> ColumnElement[int]:
    """GREATEST(a, b), spelt the same on both databases."""
    return case((a > b, a), else_=b)


class SendRateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take(self, sender_id: str, *, now: int, rate: SendRate, max_wait: int) -> Decision:
        """`core.rate_limit.take` on the sender's row (microseconds since the epoch)."""
        postgres = self._session.get_bind().dialect.name == "postgresql"
        insert = pg_insert if postgres else sqlite_insert
        row = _rates.c
        # On PostgreSQL the row stays locked until the commit: do not wait for the disk
        # there. The setting rides on whichever statement returns a row (it is read at
        # commit), instead of costing a `SET LOCAL` round trip of its own.
        fast_commit = (func.set_config("synchronous_commit", "off", True),) if postgres else ()
        # A first send finds a fresh bucket: granted at once.
        stmt = (
            insert(_rates)
            .values(sender_id=sender_id, next_at_us=now + rate.interval, retry_at_us=now)
            .on_conflict_do_update(
                index_elements=[row.sender_id],
                set_={"next_at_us": _later(row.next_at_us, _int(now)) + _int(rate.interval)},
                where=row.next_at_us <= _int(grant_limit(now, rate=rate, max_wait=max_wait)),
            )
            .returning(row.next_at_us, *fast_commit)
        )
        next_at = await self._session.scalar(stmt)
        if next_at is not None:
            return Granted(at=granted_slot(next_at, now=now, rate=rate))
        back = _later(row.retry_at_us, row.next_at_us - _int(rate.tolerance))
        retry_at = await self._session.scalar(
            update(_rates)
            .where(row.sender_id == sender_id)
            .values(retry_at_us=back + _int(rate.interval))
            .returning(row.retry_at_us, *fast_commit)
        )
        if retry_at is None:  # its sender was deleted since the first statement
            raise RuntimeError(f"the send rate row of {sender_id} vanished")
        return Refused(retry_at=retry_at - rate.interval)

    async def get(self, sender_id: str) -> Bucket | None:
        found = (
            await self._session.execute(
                select(_rates.c.next_at_us, _rates.c.retry_at_us).where(
                    _rates.c.sender_id == sender_id
                )
            )
        ).one_or_none()
        if found is None:
            return None
        return Bucket(next_at=found.next_at_us, retry_at=found.retry_at_us)
