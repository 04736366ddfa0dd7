"""Send rate repository: each sender's GCRA bucket (`core/rate_limit.py`) as a row.

A grant is one statement: an upsert that creates the row on a sender's first send and
otherwise moves `next_at_us` only when the slot is within reach (the `WHERE` of the
`DO UPDATE`), returning the new value; no row back means refused. On PostgreSQL the
upsert locks the sender's row (even when its `WHERE` is false) until the transaction
ends, so concurrent workers on any number of machines take slots one after the other
and never both read the same `next_at_us`; on SQLite, BEGIN IMMEDIATE serialises the
writers. A refusal then moves the line (`retry_at_us`) under that same lock. Several
slots at once (`take_all`: a worker's concurrent sends of one sender) are the same
upsert, moving `next_at_us` by as many intervals when the last of them is in reach.

Run it in a transaction of its own that commits at once: the row stays locked until
the commit, and every send of the sender waits for it.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Executable,
    SQLColumnExpression,
    Table,
    bindparam,
    case,
    func,
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
    check_at_once,
    grant_limit,
    granted_slots,
)
from wafile.db.tables import SendRateRow

__all__ = ["SendRateRepository"]

# The table, not the mapped class: no ORM DML path on a statement run for every send.
_rates = cast(Table, SendRateRow.__table__)


def _later(a: SQLColumnExpression[int], b: SQLColumnExpression[int]) -> ColumnElement[int]:
    """GREATEST(a, b), spelt the same on both databases."""
    return case((a > b, a), else_=b)


def _take(postgres: bool) -> tuple[Executable, Executable]:
    """The two statements of `take`, built once per database (they run for every send;
    building them per call cost more CPU than running them): a grant, and a refusal's
    next try. All values are bound parameters."""
    row = _rates.c
    insert = pg_insert if postgres else sqlite_insert
    # On PostgreSQL the row stays locked until the commit: do not wait for the disk
    # there. The setting rides on whichever statement returns a row (it is read at
    # commit), instead of costing a `SET LOCAL` round trip of its own.
    fast_commit = (func.set_config("synchronous_commit", "off", True),) if postgres else ()
    now, interval = _us("now"), _us("interval")
    # A first send finds a fresh bucket: granted at once. `span` is the slots taken
    # times the interval; `reach`, how far the first of them may be to grant the last
    # (one slot: `grant_limit`, which `next_at` itself must not pass).
    base = _later(row.next_at_us, now)
    grant = (
        insert(_rates)
        .values(sender_id=bindparam("sender"), next_at_us=_us("first_next"), retry_at_us=now)
        .on_conflict_do_update(
            index_elements=[row.sender_id],
            set_={"next_at_us": base + _us("span")},
            where=base <= _us("reach"),
        )
        .returning(row.next_at_us, *fast_commit)
    )
    back = _later(row.retry_at_us, row.next_at_us - _us("tolerance"))
    refuse = (
        update(_rates)
        .where(row.sender_id == bindparam("sender"))
        .values(retry_at_us=back + interval)
        .returning(row.retry_at_us, *fast_commit)
    )
    return grant, refuse


def _us(name: str) -> BindParameter[int]:
    # Typed, so PostgreSQL never takes a microsecond count for a 32-bit integer.
    return bindparam(name, type_=BigInteger())


def _params(
    sender_id: str, count: int, *, now: int, rate: SendRate, max_wait: int
) -> dict[str, object]:
    """The statements' parameters for `count` slots at `now`."""
    span = count * rate.interval
    limit = grant_limit(now, rate=rate, max_wait=max_wait)
    return {
        "sender": sender_id,
        "now": now,
        "first_next": now + span,
        "span": span,
        "reach": limit - span + rate.interval,  # the last slot's next_at <= limit
        "interval": rate.interval,
        "tolerance": rate.tolerance,
    }


_TAKE_PG = _take(postgres=True)
_TAKE_SQLITE = _take(postgres=False)


class SendRateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take(self, sender_id: str, *, now: int, rate: SendRate, max_wait: int) -> Decision:
        """`core.rate_limit.take` on the sender's row (microseconds since the epoch)."""
        grant, refuse = self._statements()
        params = _params(sender_id, 1, now=now, rate=rate, max_wait=max_wait)
        next_at = await self._session.scalar(grant, params)
        if next_at is not None:
            [granted] = granted_slots(next_at, 1, now=now, rate=rate)
            return granted
        retry_at = await self._session.scalar(refuse, params)
        if retry_at is None:  # its sender was deleted since the first statement
            raise RuntimeError(f"the send rate row of {sender_id} vanished")
        return Refused(retry_at=retry_at - rate.interval)

    async def take_all(
        self, sender_id: str, count: int, *, now: int, rate: SendRate, max_wait: int
    ) -> list[Granted] | None:
        """`core.rate_limit.take_all` on the sender's row: `count` slots in one
        statement, or None and nothing taken."""
        check_at_once(count, rate, max_wait)  # the upsert does not check a fresh row
        grant, _ = self._statements()
        params = _params(sender_id, count, now=now, rate=rate, max_wait=max_wait)
        next_at = await self._session.scalar(grant, params)
        if next_at is None:
            return None
        return granted_slots(next_at, count, now=now, rate=rate)

    def _statements(self) -> tuple[Executable, Executable]:
        """This database's grant and refusal (`_take`)."""
        postgres = self._session.get_bind().dialect.name == "postgresql"
        return _TAKE_PG if postgres else _TAKE_SQLITE

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
