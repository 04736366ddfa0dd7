"""Customer callbacks: webhook endpoints, events out of the state machine, deliveries.

Every `Notify` effect of a message becomes, in the transaction of the event that
caused it (the outbox), one delivery per target: the message's `callback_url` (in the
message's `callback_format`: native, or the vendor's for a dialect's per-send URL) and
each enabled endpoint of the account whose filter matches and that receives the
message (core.callback_formats.endpoint_receives: a vendor's endpoint gets only its
dialect's messages). The body is built right then and stored with the delivery, so
the receiver gets the message as it was at the event, whenever the delivery finally
succeeds, and every retry sends the same bytes. Each delivery is a `callback.deliver`
job.

A message a user sends in is one `inbound.received` event (`notify_inbound`), made the
same way in the transaction that completes the inbound message: the one that records
it, or, for a message with a file, the one that records the file in the media store
(so the event can carry it).

Retries follow the target's format's schedule (core.callback_formats): a vendor's own
where its documentation gives one (99digital, Sinch), else wafile's,
`Settings.callback_retry_schedule` (core.callbacks.RETRY_SCHEDULE: about three days);
then the delivery is `failed`, kept in the log, and can be sent again by hand. An
endpoint is *failing* from the moment its attempts have failed without a success for
`callback_failing_after_seconds` (default 24 h), or one of its deliveries used up its
retries; its next success clears that.

Order: events of one message reach each target in sequence order. A delivery is not
attempted while an earlier event of the same message to the same target is pending:
it goes back to the queue until just after that one's next attempt is due (without
using up an attempt of its own), so after an outage the receiver gets the backlog of
each message in order, one message's events never overtaking each other. The events
of one transition to one target are one job (`_outbox`), which sends them in order:
the later ones need not wait in the queue for the earlier, which cost a claim, a read
and a requeue each (most deliveries, measured under load). An earlier
delivery that is overdue by `STUCK_AFTER` (its job lost to a bug, say) no longer holds
the others up. Only a manual redelivery skips the line. Other messages' events do not
wait: a receiver that rejects one message's events blocks only that message. Inbound
events have no order among themselves (each carries its `received_at`), so none waits.

Routing reads the account's enabled endpoints through a few seconds' memory
(`ENDPOINTS_TTL_SECONDS`, services/recent.py): a change made through this service in
this process clears it at once; other processes see it within that time.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.accounts import Account
from wafile.core.callback_formats import (
    FORMATS,
    STANDARD,
    Signer,
    endpoint_receives,
    format_named,
)
from wafile.core.callbacks import (
    INBOUND_RECEIVED,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Endpoint,
    event_document,
    filter_matches,
    inbound_event_document,
    invalid_filters,
    message_document,
    retry_delay,
)
from wafile.core.inbound import Inbound
from wafile.core.message import Message
from wafile.core.message_state import Effect, MessageState, Notify
from wafile.crypto import Sealer
from wafile.db.accounts import AccountRepository
from wafile.db.callbacks import CallbackRepository
from wafile.db.jobs import JobRepository
from wafile.db.messages import MessageRepository
from wafile.errors import NotFound, ValidationFailed
from wafile.ids import new_id
from wafile.services.outbound import check_callback_url
from wafile.services.recent import Recent
from wafile.services.usage import usage

__all__ = [
    "CALLBACK_KIND",
    "ORDER_WAIT",
    "STUCK_AFTER",
    "BoundSigner",
    "CallbackService",
    "JobAttempts",
    "Prepared",
    "callbacks",
    "new_secret",
]

log = logging.getLogger(__name__)

CALLBACK_KIND: Final = "callback.deliver"
# Look again this long after the earlier event's attempt is due (it runs then).
ORDER_WAIT: Final = timedelta(seconds=0.1)
STUCK_AFTER: Final = timedelta(minutes=10)  # an earlier delivery this overdue is skipped
# A healthy endpoint's last_attempt_at is kept to this resolution (see _health).
HEALTH_RESOLUTION: Final = timedelta(seconds=1)
MAX_FILTERS: Final = 50
MAX_NOTED: Final = 10_000  # endpoints remembered by _health; past it, start afresh
# How long notify reuses an account's list of enabled endpoints (see _enabled_endpoints).
ENDPOINTS_TTL_SECONDS: Final = 5.0
SECRET_BYTES: Final = 32  # Standard Webhooks: 24 to 64 random bytes


async def _as_tuple(found: Awaitable[list[Endpoint]]) -> tuple[Endpoint, ...]:
    return tuple(await found)  # kept and shared by callers: immutable


def new_secret() -> str:
    """A Standard Webhooks signing secret, `whsec_<base64>`."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


# (raw body, secret, event id, time of the attempt) -> headers: a Signer told the account.
BoundSigner = Callable[[bytes, str, str, datetime], dict[str, str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Prepared:
    """What a delivery job needs, read before the request."""

    delivery: Delivery
    url: str
    secret: str = field(default="", repr=False)  # in clear, for the signature only
    refused: str | None = None  # why no request is made (the attempt fails as that)
    # An earlier event to this target is pending: look again at this time.
    wait_until: datetime | None = None
    # The target's format's signature headers; None: Standard Webhooks.
    sign: BoundSigner | None = None
    # The target's format's own retry schedule; None: wafile's (as configured).
    retry_schedule: tuple[float, ...] | None = None
    health: bool = True  # the outcome tells about the endpoint (not when it is disabled)
    # The endpoint as read with the delivery (None: a callback_url delivery): its
    # health columns decide whether a success needs writing (see _health).
    endpoint: Endpoint | None = None


def _bound(sign: Signer, account: Account) -> BoundSigner:
    def signed(body: bytes, secret: str, event_id: str, at: datetime) -> dict[str, str]:
        return sign(body, secret, event_id, at, account)

    return signed


def _bodies(event: dict[str, Any], formats: set[str]) -> dict[str, str | None]:
    """The event's body in each of these formats, built once per format."""
    built: dict[str, str | None] = {}
    for name in formats:
        known = FORMATS.get(name)
        if known is None:  # a dialect this version no longer has: never fail the event
            log.warning("callback format %r is unknown: its endpoints get nothing", name)
        try:
            shaped = known.build(event) if known is not None else None
        except Exception:  # a builder's bug must not stop the event for everyone else
            log.exception("callback format %r failed on a %s event", name, event.get("type"))
            shaped = None
        built[name] = None if shaped is None else _json(shaped)
    return built


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _filters(events: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(events)) if events is not None else ("*",)
    if not chosen:
        raise ValidationFailed("events: name at least one event type, or `*` for all")
    if len(chosen) > MAX_FILTERS:
        raise ValidationFailed(f"events: at most {MAX_FILTERS} filters")
    bad = invalid_filters(chosen)
    if bad:
        raise ValidationFailed(
            f"events: unknown event type {bad[0]!r} (use `*`, `message.*`, `attempt.*`, "
            "`inbound.*` or a type such as `message.delivered`)"
        )
    return chosen


async def _enqueue(
    jobs: JobRepository, payload: dict[str, object], run_at: datetime, now: datetime
) -> None:
    # Order waits give their attempt back; the queue's own attempts are for errors.
    await jobs.enqueue(CALLBACK_KIND, payload, run_at, now=now)


def _pending(
    *,
    account_id: str,
    endpoint_id: str | None,
    url: str,
    event_id: str,
    event_type: str,
    body: str,
    now: datetime,
    message_id: str | None = None,
    inbound_id: str | None = None,
    sequence: int = 0,
) -> Delivery:
    """A new delivery of one event to one target (of a message, or of an inbound
    message: those have no sequence), due now."""
    return Delivery(
        id=new_id("dlv"),
        account_id=account_id,
        endpoint_id=endpoint_id,
        message_id=message_id,
        inbound_id=inbound_id,
        url=url,
        event_id=event_id,
        event_type=event_type,
        sequence=sequence,
        body=body,
        status=DeliveryStatus.PENDING,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
        last_attempt_at=None,
        delivered_at=None,
    )


async def _outbox(session: AsyncSession, deliveries: Sequence[Delivery], now: datetime) -> None:
    """Store the deliveries and their first attempts' jobs, in the caller's transaction.

    One job per message (or inbound message) and target: the events of one transition
    to one target (a message's `attempt.sent` and `message.in_progress`, say) are one
    job that sends them in sequence order, instead of jobs of their own where each
    later one would find the earlier pending and go back to the queue to wait for it
    (see the module docstring). Never one job for two messages: a job checks the order
    of its first event only, and one message's failure must not hold up another's."""
    await CallbackRepository(session).add_deliveries(deliveries)
    groups: dict[tuple[str | None, str, str | None, str | None], list[str]] = {}
    for d in deliveries:
        groups.setdefault((d.endpoint_id, d.url, d.message_id, d.inbound_id), []).append(d.id)
    await JobRepository(session).enqueue_many(
        CALLBACK_KIND, [job_payload(ids, step=1) for ids in groups.values()], now, now=now
    )


def job_payload(delivery_ids: Sequence[str], *, step: int) -> dict[str, object]:
    """A `callback.deliver` job's payload: `delivery_id` for one delivery (as jobs
    queued before groups existed have), `delivery_ids` for several to one target, in
    sequence order."""
    if len(delivery_ids) == 1:
        return {"delivery_id": delivery_ids[0], "step": step}
    return {"delivery_ids": list(delivery_ids), "step": step}


class CallbackService:
    def __init__(self) -> None:
        # The account's enabled endpoints, read on every status change of every message
        # (three times a message, with or without endpoints): reused for a few seconds.
        self._enabled = Recent(ENDPOINTS_TTL_SECONDS)
        # Endpoint id -> (last_attempt_at, status code) of the last success this process
        # wrote to its row: later successes within HEALTH_RESOLUTION write nothing.
        self._noted: dict[str, tuple[datetime, int | None]] = {}

    async def _enabled_endpoints(self, session: AsyncSession, account_id: str) -> list[Endpoint]:
        """The account's enabled endpoints, read at most `ENDPOINTS_TTL_SECONDS` ago (a
        change through this process is seen at once: see services/recent.py)."""
        repo = CallbackRepository(session)
        found: tuple[Endpoint, ...] = await self._enabled.get(
            session,
            ("enabled", account_id),
            lambda: _as_tuple(repo.endpoints_of(account_id, enabled_only=True)),
        )
        return list(found)

    def forget_endpoints(self) -> None:
        """Read endpoints afresh from now on (after a change made outside this service)."""
        self._enabled.clear()

    # Endpoints ------------------------------------------------------------------

    async def create_endpoint(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        account: Account,
        url: str,
        events: Sequence[str] | None,
        description: str | None,
        enabled: bool,
        allow_loopback_http: bool,
        now: datetime,
        format: str = STANDARD,
    ) -> tuple[Endpoint, str]:
        """Add an endpoint; (endpoint, its signing secret: shown this once).

        `format` names what it receives and how it is signed (core.callback_formats):
        the native event, or a vendor dialect's callback.
        """
        try:
            format_named(format)
        except ValueError as exc:
            raise ValidationFailed(f"format: {exc}") from None
        endpoint = Endpoint(
            id=new_id("whe"),
            account_id=account.id,
            url=check_callback_url(url, allow_loopback_http=allow_loopback_http),
            events=_filters(events),
            description=description,
            enabled=enabled,
            created_at=now,
            updated_at=now,
            failures_since=None,
            failing_since=None,
            last_attempt_at=None,
            last_status_code=None,
            last_error=None,
            format=format,
        )
        secret = new_secret()
        await CallbackRepository(session).add_endpoint(endpoint, sealed_secret=sealer.seal(secret))
        self._enabled.clear()
        return endpoint, secret

    async def list_endpoints(self, session: AsyncSession, *, account: Account) -> list[Endpoint]:
        return await CallbackRepository(session).endpoints_of(account.id)

    async def get_endpoint(
        self, session: AsyncSession, *, account: Account, endpoint_id: str
    ) -> Endpoint:
        found = await CallbackRepository(session).endpoint(endpoint_id, account_id=account.id)
        if found is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r} in this account")
        return found

    async def update_endpoint(
        self,
        session: AsyncSession,
        *,
        account: Account,
        endpoint_id: str,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        allow_loopback_http: bool,
        now: datetime,
    ) -> Endpoint:
        """Change what is given (None: unchanged; an empty description clears it)."""
        await self.get_endpoint(session, account=account, endpoint_id=endpoint_id)
        values: dict[str, object] = {"updated_at": now}
        if url is not None:
            values["url"] = check_callback_url(url, allow_loopback_http=allow_loopback_http)
        if events is not None:
            values["events"] = _filters(events)
        if description is not None:
            values["description"] = description or None
        if enabled is not None:
            values["enabled"] = enabled
        repo = CallbackRepository(session)
        await repo.update_endpoint(endpoint_id, **values)
        self._enabled.clear()
        return await self.get_endpoint(session, account=account, endpoint_id=endpoint_id)

    async def delete_endpoint(
        self, session: AsyncSession, *, account: Account, endpoint_id: str
    ) -> None:
        """Remove the endpoint with its delivery log; its pending deliveries stop."""
        if not await CallbackRepository(session).delete_endpoint(
            endpoint_id, account_id=account.id
        ):
            raise NotFound(f"no webhook endpoint {endpoint_id!r} in this account")
        self._enabled.clear()

    async def rotate_endpoint_secret(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        account: Account,
        endpoint_id: str,
        now: datetime,
    ) -> str:
        """A new signing secret (shown this once); deliveries from now on use it."""
        await self.get_endpoint(session, account=account, endpoint_id=endpoint_id)
        secret = new_secret()
        await CallbackRepository(session).update_endpoint(
            endpoint_id, sealed_secret=sealer.seal(secret), updated_at=now
        )
        return secret

    async def rotate_callback_secret(
        self, session: AsyncSession, sealer: Sealer, *, account: Account, now: datetime
    ) -> str:
        """A new secret for the account's `callback_url` deliveries (shown this once)."""
        secret = new_secret()
        await CallbackRepository(session).replace_callback_secret(
            account.id, sealer.seal(secret), now
        )
        return secret

    # Events -------------------------------------------------------------------

    async def notify(
        self,
        session: AsyncSession,
        message: Message,
        state: MessageState,
        effects: Sequence[Effect],
        *,
        now: datetime,
    ) -> None:
        """One delivery (and job) per Notify effect and matching target, in this transaction.

        `state` is the message after the event: every event of one transition carries it.
        """
        await self.notify_many(session, [(message, state, effects)], now=now)

    async def notify_many(
        self,
        session: AsyncSession,
        changes: Sequence[tuple[Message, MessageState, Sequence[Effect]]],
        *,
        now: datetime,
    ) -> None:
        """`notify` for the transitions of several messages (message, state after,
        effects) made in this transaction, in two statements however many there are
        (one INSERT of the deliveries, one of their jobs): for the callers that
        apply a batch (a webhook body's statuses, a batch of sends)."""
        deliveries: list[Delivery] = []
        for message, state, effects in changes:
            deliveries += await self._deliveries_of(session, message, state, effects, now)
        if deliveries:
            await _outbox(session, deliveries, now)

    async def _deliveries_of(
        self,
        session: AsyncSession,
        message: Message,
        state: MessageState,
        effects: Sequence[Effect],
        now: datetime,
    ) -> list[Delivery]:
        """The deliveries of one transition's Notify effects, one per matching target."""
        notices = [e for e in effects if isinstance(e, Notify)]
        if not notices:
            return []
        own = message.callback_format if message.callback_url else None
        endpoints = [
            e
            for e in await self._enabled_endpoints(session, message.account_id)
            if endpoint_receives(e.format, origin=message.origin, own_format=own)
        ]
        if not endpoints and own is None:
            return []
        document = message_document(message, state, updated_at=now)
        deliveries: list[Delivery] = []
        for notice in notices:
            event_id = new_id("evt")
            event = event_document(event_id, notice, document)
            matching = [e for e in endpoints if filter_matches(e.events, notice.type)]
            bodies = _bodies(event, {e.format for e in matching} | ({own} if own else set()))
            targets: list[tuple[str | None, str, str]] = []
            # The message's own URL, in its format (which, too, may have nothing to say).
            if message.callback_url and (b := bodies[message.callback_format]) is not None:
                targets.append((None, message.callback_url, b))
            # An endpoint whose format has nothing to say about this event gets nothing
            # (a vendor reports fewer events than wafile has).
            targets += [(e.id, e.url, b) for e in matching if (b := bodies[e.format]) is not None]
            deliveries += [
                _pending(
                    account_id=message.account_id,
                    endpoint_id=endpoint_id,
                    url=url,
                    event_id=event_id,
                    event_type=notice.type,
                    body=body,
                    now=now,
                    message_id=message.id,
                    sequence=notice.sequence,
                )
                for endpoint_id, url, body in targets
            ]
        return deliveries

    async def notify_inbound(
        self,
        session: AsyncSession,
        inbound: Inbound,
        *,
        to: str,
        media_link: tuple[str, datetime] | None,
        now: datetime,
    ) -> None:
        """The `inbound.received` event of a message a user sent to the business number
        `to`: one delivery (and job) per enabled endpoint whose filter and format take
        it, in this transaction. Call it once per inbound message, when it is complete
        (its file, if any, in the media store or refused); `media_link` is a signed
        download link to that file."""
        endpoints = [
            e
            for e in await self._enabled_endpoints(session, inbound.account_id)
            if filter_matches(e.events, INBOUND_RECEIVED)
        ]
        if not endpoints:
            return
        event_id = new_id("evt")
        left = await usage.conversation_minutes_left(
            session,
            account_id=inbound.account_id,
            sender_id=inbound.sender_id,
            to=inbound.from_number,
            now=inbound.received_at,
        )
        event = inbound_event_document(
            event_id, inbound, to=to, media_link=media_link, conversation_minutes_left=left
        )
        bodies = _bodies(event, {e.format for e in endpoints})
        await _outbox(
            session,
            [
                _pending(
                    account_id=inbound.account_id,
                    endpoint_id=e.id,
                    url=e.url,
                    event_id=event_id,
                    event_type=INBOUND_RECEIVED,
                    body=body,
                    now=now,
                    inbound_id=inbound.id,
                )
                for e in endpoints
                if (body := bodies[e.format]) is not None
            ],
            now,
        )

    # Deliveries -----------------------------------------------------------------

    async def deliveries(
        self,
        session: AsyncSession,
        *,
        account: Account,
        limit: int,
        before: tuple[datetime, str] | None,
        endpoint_id: str | None = None,
        message_id: str | None = None,
        status: str | None = None,
    ) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        """The account's deliveries (of one endpoint, or one message), newest first."""
        if endpoint_id is not None:
            await self.get_endpoint(session, account=account, endpoint_id=endpoint_id)
        repo = CallbackRepository(session)
        found = await repo.page(
            account.id,
            limit=limit,
            before=before,
            endpoint_id=endpoint_id,
            message_id=message_id,
            status=status,
        )
        attempts = await repo.attempts_of(d.id for d in found)
        return [(d, attempts[d.id]) for d in found]

    async def redeliver(
        self, session: AsyncSession, *, account: Account, delivery_id: str, now: datetime
    ) -> Delivery:
        """One more attempt of this delivery, now (whatever its status)."""
        found = await CallbackRepository(session).delivery(delivery_id, account_id=account.id)
        if found is None:
            raise NotFound(f"no callback delivery {delivery_id!r} in this account")
        await _enqueue(JobRepository(session), {"delivery_id": found.id, "manual": True}, now, now)
        return found

    async def prepare(
        self,
        session: AsyncSession,
        sealer: Sealer,
        *,
        delivery_ids: Sequence[str],
        manual: bool,
        allow_loopback_http: bool,
        now: datetime,
    ) -> list[Prepared]:
        """What the job sends, and where, for each of its deliveries still to send (in
        sequence order; none when there is nothing to do any more).

        A job's deliveries are events of one message to one target (`_outbox`), so
        only the first one's order is checked: when an earlier event is pending, the
        first gets `wait_until` and the job waits as a whole."""
        repo = CallbackRepository(session)
        targets: dict[tuple[str | None, str, str | None], _Target | None] = {}
        prepared: list[Prepared] = []
        for delivery, endpoint, earlier_due in await repo.for_sending(delivery_ids):
            if not manual and delivery.status is not DeliveryStatus.PENDING:
                continue  # a manual redelivery got it through meanwhile
            key = (delivery.endpoint_id, delivery.url, delivery.message_id)
            if key not in targets:
                targets[key] = await self._target(
                    session, sealer, delivery, endpoint, allow_loopback_http, now
                )
            target = targets[key]
            if target is None:
                continue  # its endpoint (or account) was deleted
            wait_until = None
            if not prepared and not manual and target.refused is None:
                wait_until = _order_wait(delivery, earlier_due, now)
            prepared.append(
                Prepared(
                    delivery=delivery,
                    url=target.url,
                    secret=target.secret if target.refused is None else "",
                    refused=target.refused,
                    wait_until=wait_until,
                    sign=target.sign if target.refused is None else None,
                    retry_schedule=target.schedule,
                    health=target.health,
                    endpoint=target.endpoint,
                )
            )
        return prepared

    @staticmethod
    async def _target(
        session: AsyncSession,
        sealer: Sealer,
        delivery: Delivery,
        endpoint: tuple[Endpoint, str] | None,
        allow_loopback_http: bool,
        now: datetime,
    ) -> _Target | None:
        """Where and how a delivery goes; None when its endpoint or account is gone."""
        repo = CallbackRepository(session)
        refused: str | None = None
        health = True
        found: Endpoint | None = None
        if delivery.endpoint_id is not None:
            if endpoint is None:
                return None
            found, sealed = endpoint
            url = found.url
            format_name: str | None = found.format
            if not found.enabled:
                refused, health = "the endpoint is disabled", False
        else:
            url = delivery.url
            format_name = (
                await MessageRepository(session).callback_format(delivery.message_id)
                if delivery.message_id is not None
                else None
            )
            sealed = await repo.callback_secret(delivery.account_id) or (
                await repo.create_callback_secret(
                    delivery.account_id, sealer.seal(new_secret()), now
                )
            )
        known = FORMATS.get(format_name) if format_name is not None else None
        # The format's own retry schedule, per-send URLs' too (the message's format).
        schedule = known.retry_schedule if known is not None else None
        sign: BoundSigner | None = None
        if known is not None and known.sign is not None:
            account = await AccountRepository(session).get(delivery.account_id)
            if account is None:
                return None  # deleted (its deliveries go with it)
            sign = _bound(known.sign, account)
        try:
            check_callback_url(url, allow_loopback_http=allow_loopback_http)
        except ValidationFailed as exc:
            refused = refused or f"refused target: {exc.detail}"
        return _Target(
            url=url,
            secret=sealer.open(sealed) if refused is None else "",
            refused=refused,
            sign=sign,
            schedule=schedule,
            health=health,
            endpoint=found,
        )

    async def record(
        self,
        session: AsyncSession,
        jobs: Sequence[JobAttempts],
        *,
        schedule: Sequence[float],
        failing_after: timedelta,
        rand: Callable[[], float],
        now: datetime,
    ) -> None:
        """Log the attempts of these delivery jobs (each job's in the order made);
        schedule each failed delivery's next attempt, or settle it; queue each job's
        untried deliveries just after its failed one's next attempt.

        `schedule` is for the deliveries whose format has none of its own. However
        many jobs and events, the successes cost two statements (one UPDATE of the
        deliveries, one INSERT of their attempts, each an executemany of one text):
        the statements are most of what a callback costs."""
        repo = CallbackRepository(session)
        delivered = [
            (prepared.delivery.id, attempt)
            for job in jobs
            for prepared, attempt in job.attempts
            if attempt.error is None
        ]
        await repo.mark_delivered(delivered)
        logged: list[tuple[str, DeliveryAttempt]] = []
        notes: list[_HealthNote] = []  # what the endpoints' health columns hear of
        for job in jobs:
            next_at: datetime | None = None
            for prepared, attempt in job.attempts:
                delivery = prepared.delivery
                final_failure = False
                if attempt.error is None:
                    log.info(
                        "callback %s (%s, event %s)%s: delivered",
                        delivery.id,
                        delivery.event_type,
                        delivery.event_id,
                        " (manual)" if attempt.manual else "",
                    )
                else:
                    failed = await self._failure(
                        session, repo, prepared, attempt, job.step, schedule, rand, now
                    )
                    if failed is None:
                        continue  # deleted while the request ran
                    attempt, next_at, final_failure = failed
                    logged.append((delivery.id, attempt))
                if delivery.endpoint_id is not None and prepared.health:
                    notes.append(
                        _HealthNote(delivery.endpoint_id, attempt, final_failure, prepared.endpoint)
                    )
            if job.rest:
                # Not tried: after the failed one's next attempt (or now, should it
                # have none), in a job of their own that checks the order again.
                await JobRepository(session).enqueue(
                    CALLBACK_KIND,
                    job_payload(job.rest, step=1),
                    (next_at or now) + ORDER_WAIT,
                    now=now,
                )
        for note in _heard(notes):
            await self._health(
                repo,
                note.endpoint_id,
                note.attempt,
                note.final_failure,
                failing_after,
                now,
                known=note.known,
            )
        await repo.log_delivered(delivered)
        await repo.log_attempts(logged)

    async def _failure(
        self,
        session: AsyncSession,
        repo: CallbackRepository,
        prepared: Prepared,
        attempt: DeliveryAttempt,
        step: int,
        schedule: Sequence[float],
        rand: Callable[[], float],
        now: datetime,
    ) -> tuple[DeliveryAttempt, datetime | None, bool] | None:
        """Count a failed attempt; schedule the next one or settle the delivery. (The
        attempt numbered, for the log; when the next one is due, None: not scheduled;
        whether that was its last); None when the delivery is gone."""
        delivery = prepared.delivery
        final_failure = False
        next_at: datetime | None = None
        values: dict[str, object] = {}
        if not attempt.manual:
            own = prepared.retry_schedule
            delay = (
                None
                if prepared.refused
                else retry_delay(step, own if own is not None else schedule, rand())
            )
            if delay is None:
                final_failure = True
                values = {"status": str(DeliveryStatus.FAILED), "next_attempt_at": None}
            else:
                next_at = now + delay
                values = {"next_attempt_at": next_at}
        # An automatic failure settles (or reschedules) the delivery only while it is
        # pending: a manual redelivery may have got it through meanwhile.
        only_if_pending = not attempt.manual
        recorded = await repo.count_attempt(
            delivery.id, attempt, only_if_pending=only_if_pending, **values
        )
        if recorded is None:
            return None  # deleted while the request ran
        number, status, applied = recorded
        if only_if_pending and not applied:
            final_failure, next_at = False, None
        if next_at is not None:
            payload = job_payload([delivery.id], step=step + 1)
            await _enqueue(JobRepository(session), payload, next_at, now)
        numbered = replace(attempt, number=number)
        log.info(
            "callback %s (%s, event %s) attempt %d%s: %s; now %s",
            delivery.id,
            delivery.event_type,
            delivery.event_id,
            number,
            " (manual)" if attempt.manual else "",
            attempt.error,
            status,
        )
        return numbered, next_at, final_failure

    async def _health(
        self,
        repo: CallbackRepository,
        endpoint_id: str,
        attempt: DeliveryAttempt,
        final_failure: bool,
        failing_after: timedelta,
        now: datetime,
        *,
        known: Endpoint | None = None,
    ) -> None:
        """Note the attempt on the endpoint. `known` is the endpoint as read with the
        delivery, moments ago."""
        if attempt.error is None:
            # A healthy endpoint's row is written at most once a HEALTH_RESOLUTION: on
            # PostgreSQL each write locks the row to commit, which would serialise every
            # worker's deliveries to one busy endpoint. The copy read with the delivery
            # decides without a statement when it already says so; else the UPDATE's own
            # condition does (the copy may be a few moments old).
            if known is not None:
                healthy = known.failures_since is None and known.failing_since is None
                last = (known.last_attempt_at, known.last_status_code)
                noted = self._noted.get(endpoint_id)
                if noted is not None and (last[0] is None or noted[0] > last[0]):
                    last = noted
                fresh = last[0] is not None and (attempt.requested_at - last[0] < HEALTH_RESOLUTION)
                if healthy and fresh and last[1] == attempt.status_code:
                    return
            if await repo.note_success(
                endpoint_id,
                at=attempt.requested_at,
                status_code=attempt.status_code,
                resolution=HEALTH_RESOLUTION,
            ):
                if len(self._noted) >= MAX_NOTED:
                    self._noted.clear()
                self._noted[endpoint_id] = (attempt.requested_at, attempt.status_code)
            return
        self._noted.pop(endpoint_id, None)
        # A failure: read the row now, for when its failures began.
        endpoint = await repo.endpoint(endpoint_id, account_id=None)
        if endpoint is None:
            return
        since = endpoint.failures_since or attempt.requested_at
        failing = endpoint.failing_since
        if failing is None and (final_failure or now - since >= failing_after):
            failing = now
            log.warning("webhook endpoint %s is failing since %s", endpoint_id, since.isoformat())
        await repo.update_endpoint(
            endpoint_id,
            failures_since=since,
            failing_since=failing,
            last_attempt_at=attempt.requested_at,
            last_status_code=attempt.status_code,
            last_error=attempt.error,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class JobAttempts:
    """What one delivery job did: its attempts in the order made (see `record`)."""

    attempts: Sequence[tuple[Prepared, DeliveryAttempt]]
    step: int  # the automatic attempt number these were, of the retry schedule
    # The job's deliveries it did not try (after one that failed: they keep its order).
    rest: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class _HealthNote:
    """An attempt to an endpoint, for its health columns (see `record`)."""

    endpoint_id: str
    attempt: DeliveryAttempt
    final_failure: bool
    known: Endpoint | None  # the endpoint as read with the delivery


def _heard(notes: Sequence[_HealthNote]) -> list[_HealthNote]:
    """The notes the health columns need, in the order of the requests: of several
    successes in a row to one endpoint only the last (each would overwrite the one
    before: one statement, not one per job of a batch); every failure, and the
    success before it."""
    ordered = sorted(notes, key=lambda n: n.attempt.requested_at)
    kept: list[_HealthNote] = []
    success_after: set[str] = set()  # endpoints with a later success, going backwards
    for note in reversed(ordered):
        success = note.attempt.error is None
        if success and note.endpoint_id in success_after:
            continue
        kept.append(note)
        if success:
            success_after.add(note.endpoint_id)
        else:
            success_after.discard(note.endpoint_id)
    kept.reverse()
    return kept


@dataclass(frozen=True, kw_only=True, slots=True)
class _Target:
    """A delivery's target, as `prepare` works it out (once per job)."""

    url: str
    secret: str = field(repr=False)
    refused: str | None
    sign: BoundSigner | None
    schedule: tuple[float, ...] | None
    health: bool
    endpoint: Endpoint | None


def _order_wait(delivery: Delivery, earlier_due: datetime | None, now: datetime) -> datetime | None:
    """When to look again at a delivery whose earlier event to the same target, due at
    `earlier_due`, is pending; None: it goes now."""
    if earlier_due is None:
        return None
    if earlier_due < now - STUCK_AFTER:
        log.warning(
            "delivery %s: not waiting for an earlier one overdue since %s",
            delivery.id,
            earlier_due.isoformat(),
        )
        return None
    return max(earlier_due, now) + ORDER_WAIT


callbacks = CallbackService()
