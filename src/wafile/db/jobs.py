"""Job repository: all SQL of the job queue (docs/jobs.md tells the story).

Every method runs inside the caller's transaction. Enqueueing in the same session as
the rows the job is about is the transactional outbox: both commit, or neither.

Claiming is one statement on both databases: an UPDATE of the rows a sub-select
picks, returning them. On PostgreSQL the sub-select locks its rows `FOR UPDATE SKIP
LOCKED`, so concurrent claimers on any number of machines never pick the same job
and never wait on each other; the CTE is `MATERIALIZED` so the planner cannot run the
locking sub-select twice and claim more than `limit`. On SQLite the engine's BEGIN
IMMEDIATE serialises writers, which gives the same guarantee.

Every finishing write (complete, retry, bury, release, reschedule) applies only
while `lease_owner` is still the caller: a worker whose lease expired and was taken
over learns so (False) instead of overwriting the new owner's work.

On PostgreSQL, whatever makes a job claimable also runs `NOTIFY wafile_jobs`; it is
delivered on commit (and never when the transaction rolls back).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from wafile.core.jobs import DEFAULT_MAX_ATTEMPTS, Job, Priority
from wafile.db.lists import padded
from wafile.db.tables import JobRow
from wafile.db.types import UTCDateTime
from wafile.ids import new_id

__all__ = ["NOTIFY_CHANNEL", "JobRepository", "NewJob"]

NOTIFY_CHANNEL: Final = "wafile_jobs"
# Statements on the table, not the mapped class: the queue never needs the ORM's
# identity map, and its DML path costs about 0.2 ms of CPU more per statement, on the
# hottest statements wafile runs (several per message).
_jobs = cast(Table, JobRow.__table__)
_c = _jobs.c
_ENQUEUE_PG = (
    pg_insert(_jobs)
    .on_conflict_do_nothing(index_elements=[_c.dedupe_key])
    .returning(_c.id, func.pg_notify(NOTIFY_CHANNEL, ""))
)
_ENQUEUE_SQLITE = (
    sqlite_insert(_jobs).on_conflict_do_nothing(index_elements=[_c.dedupe_key]).returning(_c.id)
)


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        payload=row.payload,
        run_at=row.run_at,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
        dedupe_key=row.dedupe_key,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        last_error=row.last_error,
        dead_at=row.dead_at,
        priority=row.priority,
    )


# Built once (every batch of finished jobs runs it), as the claims are.
_COMPLETE_MANY = (
    delete(_jobs)
    .where(tuple_(_c.id, _c.lease_owner).in_(bindparam("held", expanding=True)))
    .returning(_c.id)
)


def _in_claim_order(rows: Iterable[Any]) -> list[Job]:
    # RETURNING has no order of its own.
    return sorted((_job(row) for row in rows), key=lambda j: (-j.priority, j.run_at, j.id))


def _of_kinds(postgres: bool, kinds: bool, priority: bool) -> list[ColumnElement[bool]]:
    """The `kinds` and `min_priority` conditions, as bound parameters."""
    where: list[ColumnElement[bool]] = []
    if kinds:
        # One array parameter on PostgreSQL: an IN list is rendered again for every
        # execution (SQLAlchemy's "expanding" parameters).
        where.append(
            _c.kind == any_(bindparam("kinds", type_=ARRAY(String())))
            if postgres
            else _c.kind.in_(bindparam("kinds", expanding=True))
        )
    if priority:
        where.append(_c.priority >= bindparam("min_priority", type_=Integer()))
    return where


def _unleased(postgres: bool, kinds: bool, priority: bool) -> ColumnElement[bool]:
    """Jobs nobody holds (expired leases are not seen: the worker's poll interval
    bounds how late they are picked up), of these kinds and priorities."""
    unheld = [_c.dead_at.is_(None), _c.lease_owner.is_(None)]
    return and_(*unheld, *_of_kinds(postgres, kinds, priority))


@lru_cache(maxsize=32)
def _claim_statements(postgres: bool, kinds: bool, priority: bool) -> tuple[Update, Select[Any]]:
    """The claim (`claim`), and the claim with the next `run_at` (`claim_next`'s, on
    PostgreSQL), for one database and one set of conditions, built once: a worker runs
    them on every pass of its loop, and building them (three CTEs) cost more CPU than
    running them. Parameters: now, limit, owner, lease_until, kinds, min_priority."""
    now = bindparam("now", type_=UTCDateTime())
    pick = (
        select(_c.id)
        .where(
            _c.dead_at.is_(None),
            _c.run_at <= now,
            or_(_c.lease_expires_at.is_(None), _c.lease_expires_at < now),
            *_of_kinds(postgres, kinds, priority),
        )
        .order_by(_c.priority.desc(), _c.run_at, _c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    if postgres:
        pick = pick.with_for_update(skip_locked=True)
    picked = pick.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
    claim = (
        update(_jobs)
        .where(_c.id.in_(select(picked.c.id)))
        .values(
            lease_owner=bindparam("owner"),
            lease_expires_at=bindparam("lease_until", type_=UTCDateTime()),
            attempts=_c.attempts + 1,
        )
        .returning(*_jobs.columns)
    )
    claimed = claim.cte("claimed")
    left = and_(_unleased(postgres, kinds, priority), _c.id.not_in(select(picked.c.id)))
    later = select(func.min(_c.run_at).label("next_run_at")).where(left).cte("later")
    # One row even when nothing was claimed: `later`'s, with no job.
    with_next = select(claimed, later.c.next_run_at).select_from(later.outerjoin(claimed, true()))
    return claim, with_next


@lru_cache(maxsize=32)
def _next_run_at(postgres: bool, kinds: bool, priority: bool) -> Select[Any]:
    """`next_run_at`'s statement, built once (as `_claim_statements`)."""
    return select(func.min(_c.run_at)).where(_unleased(postgres, kinds, priority))


def _kind_params(kinds: Collection[str] | None, min_priority: int | None) -> dict[str, Any]:
    """The parameters of `_of_kinds`'s conditions."""
    return {"kinds": sorted(kinds) if kinds is not None else None, "min_priority": min_priority}


def _claim_params(
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    kinds: Collection[str] | None,
    min_priority: int | None,
) -> dict[str, Any]:
    return {
        "now": now,
        "limit": limit,
        "owner": owner,
        "lease_until": now + lease,
        **_kind_params(kinds, min_priority),
    }


def _held(job_id: str, owner: str) -> ColumnElement[bool]:
    return and_(_c.id == job_id, _c.lease_owner == owner)


@dataclass(frozen=True, kw_only=True, slots=True)
class NewJob:
    """A job to add (`JobRepository.enqueue_all`)."""

    kind: str
    payload: Mapping[str, Any]
    run_at: datetime
    dedupe_key: str | None = None
    priority: int = Priority.NORMAL


def _row(
    kind: str,
    payload: Mapping[str, Any],
    run_at: datetime,
    now: datetime,
    dedupe_key: str | None,
    max_attempts: int,
    priority: int,
) -> dict[str, Any]:
    """A new job's row, as the INSERT statements of the repository take it."""
    return {
        "id": new_id("job"),
        "kind": kind,
        "payload": dict(payload),
        "run_at": run_at,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": now,
        "dedupe_key": dedupe_key,
        "priority": priority,
    }


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _is_postgres(self) -> bool:
        return self._session.get_bind().dialect.name == "postgresql"

    async def _notify(self) -> None:
        # PostgreSQL folds identical notifications of one transaction into one.
        if self._is_postgres():
            await self._session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, Any],
        run_at: datetime,
        *,
        now: datetime,
        dedupe_key: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        priority: int = Priority.NORMAL,
    ) -> str | None:
        """Add a job; its id, or None when a job with this `dedupe_key` already exists.

        A dead job keeps its key: revive or delete it to enqueue that key again.
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        values = _row(kind, payload, run_at, now, dedupe_key, max_attempts, priority)
        # Statements built once, the row as their parameters: building `.values(...)`
        # per job cost more CPU than running the statement.
        if self._is_postgres():
            # The wake-up rides on the insert (a row inserted, a notification sent at
            # commit): one statement instead of INSERT then NOTIFY.
            row = (await self._session.execute(_ENQUEUE_PG, values)).first()
            return str(row[0]) if row is not None else None
        found: str | None = await self._session.scalar(_ENQUEUE_SQLITE, values)
        return found

    async def enqueue_all(self, jobs: Sequence[NewJob], *, now: datetime) -> None:
        """`enqueue` for several jobs of any kinds in one INSERT; a job whose
        `dedupe_key` exists already is left out, as there."""
        if len(jobs) == 1:
            one = jobs[0]
            await self.enqueue(
                one.kind,
                one.payload,
                one.run_at,
                now=now,
                dedupe_key=one.dedupe_key,
                priority=one.priority,
            )
            return
        if not jobs:
            return
        postgres = self._is_postgres()
        rows = [
            _row(j.kind, j.payload, j.run_at, now, j.dedupe_key, DEFAULT_MAX_ATTEMPTS, j.priority)
            for j in jobs
        ]
        stmt = (pg_insert if postgres else sqlite_insert)(_jobs).on_conflict_do_nothing(
            index_elements=[_c.dedupe_key]
        )
        # As in enqueue: the wake-up rides on the insert. The rows go as parameters,
        # not `.values(rows)`: SQLAlchemy then compiles the statement once and renders
        # the batch into one INSERT itself ("insertmanyvalues"), where a multi-row
        # VALUES was compiled anew for every batch (2-3x the CPU at 4-16 rows).
        await self._session.execute(
            stmt.returning(func.pg_notify(NOTIFY_CHANNEL, "")) if postgres else stmt, rows
        )

    async def enqueue_many(
        self,
        kind: str,
        payloads: Sequence[Mapping[str, Any]],
        run_at: datetime,
        *,
        now: datetime,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        priority: int = Priority.NORMAL,
    ) -> None:
        """Add one job per payload (no dedupe key), all due at `run_at`, in one INSERT."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not payloads:
            return
        rows = [_row(kind, p, run_at, now, None, max_attempts, priority) for p in payloads]
        stmt = insert(_jobs)
        if self._is_postgres():
            # As in enqueue: the wake-up rides on the insert (folded into one at commit).
            stmt = stmt.returning(func.pg_notify(NOTIFY_CHANNEL, ""))
        await self._session.execute(stmt, rows)  # rows as parameters: see enqueue_all

    async def claim(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        *,
        kinds: Collection[str] | None = None,
        min_priority: int | None = None,
    ) -> list[Job]:
        """Lease up to `limit` due jobs to `owner`: higher priority first, then oldest
        `run_at` (a due deadline overtakes a backlog of sends).

        Due: `run_at <= now`, not dead, and no live lease (none, or expired). Each
        claim counts one attempt. `kinds` limits the claim to the kinds this worker
        can run (a rolling upgrade must not hand new kinds to old workers);
        `min_priority` to jobs of at least that priority (timers, in reserved slots).
        """
        if limit < 1:
            return []
        claim, _ = _claim_statements(
            self._is_postgres(), kinds is not None, min_priority is not None
        )
        params = _claim_params(owner, now, limit, lease, kinds, min_priority)
        return _in_claim_order((await self._session.execute(claim, params)).all())

    async def claim_next(
        self,
        owner: str,
        now: datetime,
        limit: int,
        lease: timedelta,
        *,
        kinds: Collection[str] | None = None,
        min_priority: int | None = None,
    ) -> tuple[list[Job], datetime | None]:
        """`claim`, and when fewer than `limit` were due, `next_run_at` of the jobs
        left (for how long the worker may sleep).

        On PostgreSQL one statement does both (a worker that is not full claimed, then
        asked for the next `run_at`: two round trips on every pass of its loop). Its
        `next_run_at` part reads the snapshot the statement started from, in which the
        jobs it claims are still free: it leaves them out by id. A job another worker
        is claiming at that moment may count as due now; the caller then looks again
        after a short sleep, as it would after any claim that lost a race.
        """
        if limit < 1:
            return [], None
        if not self._is_postgres():
            jobs = await self.claim(
                owner, now, limit, lease, kinds=kinds, min_priority=min_priority
            )
            if len(jobs) == limit:
                return jobs, None
            return jobs, await self.next_run_at(kinds=kinds, min_priority=min_priority)
        _, with_next = _claim_statements(True, kinds is not None, min_priority is not None)
        params = _claim_params(owner, now, limit, lease, kinds, min_priority)
        rows = (await self._session.execute(with_next, params)).all()
        jobs = _in_claim_order(row for row in rows if row.id is not None)
        return jobs, None if len(jobs) == limit else rows[0].next_run_at

    async def complete(self, job_id: str, owner: str) -> bool:
        """Delete the finished job; False when `owner` no longer holds its lease."""
        result = await self._session.execute(delete(_jobs).where(_held(job_id, owner)))
        return _rowcount(result) == 1

    async def complete_many(self, jobs: Collection[tuple[str, str]]) -> set[str]:
        """`complete` for several (job id, owner) pairs in one statement: the ids of the
        jobs deleted, those whose owner still held the lease."""
        if not jobs:
            return set()
        result = await self._session.execute(_COMPLETE_MANY, {"held": padded(jobs)})
        return set(result.scalars())

    async def retry(
        self, job_id: str, owner: str, run_at: datetime, error: str, *, counts: bool = True
    ) -> bool:
        """Release the lease; the job runs again at `run_at`. `counts=False` gives back
        the attempt its claim counted (it waited, it did not try)."""
        extra: dict[str, Any] = {} if counts else {"attempts": _c.attempts - 1}
        done = await self._finish(
            job_id,
            owner,
            run_at=run_at,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
            **extra,
        )
        if done:
            await self._notify()
        return done

    async def bury(self, job_id: str, owner: str, error: str, now: datetime) -> bool:
        """Mark the job dead: kept with its `last_error`, never claimed again."""
        return await self._finish(
            job_id, owner, dead_at=now, last_error=error, lease_owner=None, lease_expires_at=None
        )

    async def release(self, job_id: str, owner: str) -> bool:
        """Give the job back untried (shutdown): the attempt does not count."""
        done = await self._finish(
            job_id,
            owner,
            attempts=_c.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
        )
        if done:
            await self._notify()
        return done

    async def reschedule(self, job_id: str, owner: str, run_at: datetime) -> bool:
        """A recurring job succeeded: the same row (and dedupe key) runs again at `run_at`.

        Attempts start again from zero: they count failures of one run, not of the series.
        """
        done = await self._finish(
            job_id,
            owner,
            run_at=run_at,
            attempts=0,
            last_error=None,
            lease_owner=None,
            lease_expires_at=None,
        )
        if done:
            await self._notify()
        return done

    async def _finish(self, job_id: str, owner: str, **values: Any) -> bool:
        result = await self._session.execute(
            update(_jobs).where(_held(job_id, owner)).values(**values)
        )
        return _rowcount(result) == 1

    async def heartbeat(
        self, owner: str, job_ids: Collection[str], *, now: datetime, lease: timedelta
    ) -> set[str]:
        """Extend the leases `owner` still holds among `job_ids`; the ids extended."""
        if not job_ids:
            return set()
        stmt = (
            update(_jobs)
            .where(_c.lease_owner == owner, _c.id.in_(list(job_ids)))
            .values(lease_expires_at=now + lease)
            .returning(_c.id)
        )
        return set((await self._session.scalars(stmt)).all())

    async def next_run_at(
        self, *, kinds: Collection[str] | None = None, min_priority: int | None = None
    ) -> datetime | None:
        """The earliest `run_at` of a job nobody holds (expired leases are not seen:
        the worker's poll interval bounds how late they are picked up)."""
        stmt = _next_run_at(self._is_postgres(), kinds is not None, min_priority is not None)
        due: datetime | None = await self._session.scalar(stmt, _kind_params(kinds, min_priority))
        return due

    async def get(self, job_id: str) -> Job | None:
        row = (await self._session.execute(select(_jobs).where(_c.id == job_id))).first()
        return _job(row) if row is not None else None

    async def by_dedupe_key(self, dedupe_key: str) -> Job | None:
        stmt = select(_jobs).where(_c.dedupe_key == dedupe_key)
        row = (await self._session.execute(stmt)).first()
        return _job(row) if row is not None else None

    async def dead(self, *, limit: int, kind: str | None = None) -> list[Job]:
        """Dead jobs, most recent first, for inspection."""
        stmt = select(_jobs).where(_c.dead_at.is_not(None))
        if kind is not None:
            stmt = stmt.where(_c.kind == kind)
        stmt = stmt.order_by(_c.dead_at.desc(), _c.id).limit(limit)
        return [_job(row) for row in await self._session.execute(stmt)]

    async def revive(self, job_id: str, *, now: datetime) -> bool:
        """Give a dead job a fresh set of attempts, due now (after fixing its cause)."""
        result = await self._session.execute(
            update(_jobs)
            .where(_c.id == job_id, _c.dead_at.is_not(None))
            .values(dead_at=None, attempts=0, run_at=now)
        )
        done = _rowcount(result) == 1
        if done:
            await self._notify()
        return done


def _rowcount(result: Any) -> int:
    # DML results are CursorResults; the typed Result does not declare rowcount.
    return int(getattr(result, "rowcount", 0) or 0)
