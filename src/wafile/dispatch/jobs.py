"""What a job handler sees: its context, the registry of handlers by kind, `RetryLater`.

A handler is `async def handler(job: Job, ctx: JobContext) -> None`. It returns to
succeed, raises `RetryLater(after)` to run again later by its own decision (rate
limits, a provider's Retry-After), and raises anything else to fail the attempt
(retried with backoff until `max_attempts`, then the job is dead).

A kind can also name what its death means (`on_dead`): run in the transaction that
marks the job dead, it turns "the worker gave up" into an outcome someone sees (a
send that failed every attempt fails its attempt, so the message moves on and the
business is told, instead of staying in progress for ever).

`ctx.session` is the job's own transaction: what the handler writes there commits
together with the job's completion, or not at all (and the job's lease is checked
in that same transaction, so a handler whose job was taken over commits nothing).
The transaction opens on first use: do slow I/O (HTTP to a provider) before touching
`ctx.session`, or in short transactions of its own via `ctx.deps.sessions`. On
SQLite, never hold `ctx.session` while opening another transaction: there is one
connection, and the second would wait for the first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wafile.channels.callback_http import CallbackPoster
from wafile.channels.sms_twilio import TwilioSms
from wafile.channels.whatsapp_cloud import WhatsAppCloud
from wafile.clock import Clock
from wafile.config import Settings
from wafile.core.jobs import Job
from wafile.db.batch_read import BatchRead, batches
from wafile.db.messages import ForSend
from wafile.dispatch.callback_batch import CallbackBatcher
from wafile.dispatch.sent_batch import SentBatcher
from wafile.dispatch.slot_batch import SlotBatcher
from wafile.dispatch.webhook_batch import WebhookBatcher
from wafile.media.store import BlobStore
from wafile.services.messages import ForSendLookup, messages
from wafile.services.outbound import callback_guard_for

__all__ = [
    "DeadHandler",
    "Handler",
    "HandlerRegistry",
    "JobContext",
    "RetryLater",
    "WorkerDeps",
]

MAX_KIND_LEN: Final = 64  # JobRow.kind


class RetryLater(Exception):
    """Run this job again after `after` (a timedelta or seconds); not a failure.

    It does not bury the job when attempts run out: the handler decides, and can read
    `job.attempts` to give up by raising something else. `counts=False` gives the
    attempt back: the job only waited its turn (a rate limit), nothing was tried.
    """

    def __init__(self, after: timedelta | float, reason: str = "", *, counts: bool = True) -> None:
        self.after = after if isinstance(after, timedelta) else timedelta(seconds=after)
        if self.after < timedelta(0):
            raise ValueError("RetryLater needs a delay >= 0")
        self.reason = reason
        self.counts = counts
        super().__init__(reason or f"retry in {self.after.total_seconds():g}s")


@dataclass(frozen=True, kw_only=True)
class WorkerDeps:
    """What handlers share: one set per worker process, built at the edge."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    settings: Settings
    store: BlobStore
    # One pooled client to the Cloud API for all of the worker's handlers (run_worker
    # sets it): building one per send costs a TLS context each, on the event loop.
    whatsapp: WhatsAppCloud | None = None
    # The same for customer callbacks and for SMS (run_worker sets them).
    callbacks: CallbackPoster | None = None
    sms: TwilioSms | None = None
    # Sends Meta accepted, recorded together with their jobs' completions.
    sent: SentBatcher = field(default_factory=SentBatcher)
    # Callback attempts, recorded together with their jobs' completions.
    callback_records: CallbackBatcher = field(default_factory=CallbackBatcher)
    # Stored webhook bodies, applied together with their jobs' completions.
    webhook_bodies: WebhookBatcher = field(default_factory=WebhookBatcher)
    # Send slots that concurrent jobs ask of one sender, taken in one statement.
    send_slots: SlotBatcher = field(default_factory=SlotBatcher)
    # What concurrent send jobs read first (their messages), read in one query.
    send_reads: BatchRead[str, ForSend] = field(
        default_factory=lambda: BatchRead(messages.read_for_send, what="messages to send")
    )

    @property
    def for_send_lookup(self) -> ForSendLookup | None:
        """Reads a send job's message with its file, window and upload together with
        the other jobs' (`send_reads`); None where reads are not batched (SQLite)."""
        return self._for_send_of if batches(self.sessions) else None

    async def _for_send_of(self, message_id: str) -> ForSend | None:
        return await self.send_reads.get(self.sessions, message_id)

    @asynccontextmanager
    async def cloud(self) -> AsyncIterator[WhatsAppCloud]:
        """The shared client, or a short-lived one when the worker has none."""
        if self.whatsapp is not None:
            yield self.whatsapp
            return
        async with WhatsAppCloud() as client:
            yield client

    @asynccontextmanager
    async def sms_client(self) -> AsyncIterator[TwilioSms]:
        """The shared SMS client, or a short-lived one when the worker has none."""
        if self.sms is not None:
            yield self.sms
            return
        async with TwilioSms() as client:
            yield client

    @asynccontextmanager
    async def callback_client(self) -> AsyncIterator[CallbackPoster]:
        """The shared callback client, or a short-lived one when the worker has none."""
        if self.callbacks is not None:
            yield self.callbacks
            return
        async with CallbackPoster(guard=callback_guard_for(self.settings)) as client:
            yield client


@dataclass(kw_only=True)
class JobContext:
    session: AsyncSession  # the job's transaction; see the module docstring
    deps: WorkerDeps
    now: datetime  # when this attempt started
    owner: str  # this worker's lease owner id
    _again_at: datetime | None = field(default=None, repr=False)
    _completed: bool = field(default=False, repr=False)

    def run_again_at(self, when: datetime) -> None:
        """Keep this job (same row, same dedupe key) and run it again at `when`.

        For recurring jobs: on success the row is rescheduled instead of deleted, in
        the job's transaction, so there is never a moment without the singleton.
        """
        self._again_at = when

    @property
    def again_at(self) -> datetime | None:
        return self._again_at

    def mark_completed(self) -> None:
        """The handler completed the job itself, in a transaction of its own that also
        checked the lease (see dispatch/sent_batch.py): the worker must not again."""
        self._completed = True

    @property
    def completed(self) -> bool:
        return self._completed


Handler = Callable[[Job, JobContext], Awaitable[None]]
# `on_dead(job, error, ctx)`: the job used up its attempts; `error` is its last one.
DeadHandler = Callable[[Job, str, JobContext], Awaitable[None]]


class HandlerRegistry(Mapping[str, Handler]):
    """Handlers by job kind. A worker claims only the kinds its registry knows."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._on_dead: dict[str, DeadHandler] = {}

    def register(self, kind: str, handler: Handler, *, on_dead: DeadHandler | None = None) -> None:
        if not kind or len(kind) > MAX_KIND_LEN:
            raise ValueError(f"a job kind is 1 to {MAX_KIND_LEN} characters")
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = handler
        if on_dead is not None:
            self._on_dead[kind] = on_dead

    def on_dead(self, kind: str) -> DeadHandler | None:
        """What the death of a job of this kind means, if anything."""
        return self._on_dead.get(kind)

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """`@registry.handler("media.sweep")` registers the decorated function."""

        def decorate(fn: Handler) -> Handler:
            self.register(kind, fn)
            return fn

        return decorate

    def __getitem__(self, kind: str) -> Handler:
        return self._handlers[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)
