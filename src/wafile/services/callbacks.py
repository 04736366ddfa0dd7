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
each message in order, one message's events never overtaking each other. An earlier
delivery that is overdue by `STUCK_AFTER` (its job lost to a bug, say) no longer holds
the others up. Only a manual redelivery skips the line. Other messages' events do not
wait: a receiver that rejects one message's events blocks only that message. Inbound
events have no order among themselves (each carries its `received_at`), so none waits.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from wafile.services.usage import usage

__all__ = [
    "CALLBACK_KIND",
    "ORDER_WAIT",
    "STUCK_AFTER",
    "BoundSigner",
    "CallbackService",
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
SECRET_BYTES: Final = 32  # Standard Webhooks: 24 to 64 random bytes


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
    """Store the deliveries and their first attempts' jobs, in the caller's transaction."""
    await CallbackRepository(session).add_deliveries(deliveries)
    jobs = JobRepository(session)
    for delivery in deliveries:
        await _enqueue(jobs, {"delivery_id": delivery.id, "step": 1}, now, now)


class CallbackService:
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
        return await self.get_endpoint(session, account=account, endpoint_id=endpoint_id)

    async def delete_endpoint(
        self, session: AsyncSession, *, account: Account, endpoint_id: str
    ) -> None:
        """Remove the endpoint with its delivery log; its pending deliveries stop."""
        if not await CallbackRepository(session).delete_endpoint(
            endpoint_id, account_id=account.id
        ):
            raise NotFound(f"no webhook endpoint {endpoint_id!r} in this account")

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
        enabled: dict[str, list[Endpoint]] | None = None,
    ) -> None:
        """One delivery (and job) per Notify effect and matching target, in this transaction.

        `state` is the message after the event: every event of one transition carries it.
        `enabled` keeps the accounts' enabled endpoints once read, for a caller that
        notifies many events in one transaction (a batch of statuses).
        """
        notices = [e for e in effects if isinstance(e, Notify)]
        if not notices:
            return
        repo = CallbackRepository(session)
        own = message.callback_format if message.callback_url else None
        known = enabled.get(message.account_id) if enabled is not None else None
        if known is None:
            known = await repo.endpoints_of(message.account_id, enabled_only=True)
            if enabled is not None:
                enabled[message.account_id] = known
        endpoints = [
            e for e in known if endpoint_receives(e.format, origin=message.origin, own_format=own)
        ]
        if not endpoints and own is None:
            return
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
        await _outbox(session, deliveries, now)

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
        repo = CallbackRepository(session)
        endpoints = [
            e
            for e in await repo.endpoints_of(inbound.account_id, enabled_only=True)
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
        delivery_id: str,
        manual: bool,
        allow_loopback_http: bool,
        now: datetime,
    ) -> Prepared | None:
        """What the job sends, and where; None when there is nothing to do any more."""
        repo = CallbackRepository(session)
        delivery = await repo.delivery(delivery_id, account_id=None)
        if delivery is None:
            return None  # its endpoint (or message, or account) was deleted
        if not manual and delivery.status is not DeliveryStatus.PENDING:
            return None  # a manual redelivery got it through meanwhile
        refused: str | None = None
        health = True
        sign: BoundSigner | None = None
        if delivery.endpoint_id is not None:
            found = await repo.endpoint_with_secret(delivery.endpoint_id, account_id=None)
            if found is None:
                return None
            endpoint, sealed = found
            url = endpoint.url
            format_name: str | None = endpoint.format
            if not endpoint.enabled:
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
        if known is not None and known.sign is not None:
            account = await AccountRepository(session).get(delivery.account_id)
            if account is None:
                return None  # deleted (its deliveries go with it)
            sign = _bound(known.sign, account)
        try:
            check_callback_url(url, allow_loopback_http=allow_loopback_http)
        except ValidationFailed as exc:
            refused = refused or f"refused target: {exc.detail}"
        if refused is not None:
            return Prepared(
                delivery=delivery,
                url=url,
                refused=refused,
                health=health,
                retry_schedule=schedule,
            )
        wait_until = None if manual else await repo.earlier_pending(delivery)
        if wait_until is not None and wait_until < now - STUCK_AFTER:
            log.warning(
                "delivery %s: not waiting for an earlier one overdue since %s",
                delivery.id,
                wait_until.isoformat(),
            )
            wait_until = None
        if wait_until is not None:
            wait_until = max(wait_until, now) + ORDER_WAIT
        return Prepared(
            delivery=delivery,
            url=url,
            secret=sealer.open(sealed),
            wait_until=wait_until,
            sign=sign,
            retry_schedule=schedule,
        )

    async def record(
        self,
        session: AsyncSession,
        *,
        prepared: Prepared,
        attempt: DeliveryAttempt,
        step: int,
        schedule: Sequence[float],
        failing_after: timedelta,
        rand: float,
        now: datetime,
    ) -> DeliveryStatus:
        """Log one attempt; schedule the next one, or settle the delivery. Its status."""
        repo = CallbackRepository(session)
        delivery = await repo.delivery(prepared.delivery.id, account_id=None)
        if delivery is None:
            return prepared.delivery.status  # deleted while the request ran
        delivered = attempt.error is None
        final_failure = False
        values: dict[str, object] = {}
        if delivered:
            values = {
                "status": str(DeliveryStatus.DELIVERED),
                "delivered_at": attempt.requested_at,
                "next_attempt_at": None,
            }
        elif not attempt.manual and delivery.status is DeliveryStatus.PENDING:
            delay = None if prepared.refused else retry_delay(step, schedule, rand)
            if delay is None:
                final_failure = True
                values = {"status": str(DeliveryStatus.FAILED), "next_attempt_at": None}
            else:
                values = {"next_attempt_at": now + delay}
                payload = {"delivery_id": delivery.id, "step": step + 1}
                await _enqueue(JobRepository(session), payload, now + delay, now)
        numbered = DeliveryAttempt(
            number=delivery.attempts + 1,
            manual=attempt.manual,
            requested_at=attempt.requested_at,
            status_code=attempt.status_code,
            error=attempt.error,
            latency_ms=attempt.latency_ms,
            response=attempt.response,
        )
        await repo.record_attempt(delivery.id, numbered, **values)
        if delivery.endpoint_id is not None and prepared.health:
            await self._health(
                repo, delivery.endpoint_id, numbered, final_failure, failing_after, now
            )
        status = DeliveryStatus(str(values.get("status", delivery.status)))
        log.info(
            "callback %s (%s, event %s) attempt %d%s: %s",
            delivery.id,
            delivery.event_type,
            delivery.event_id,
            numbered.number,
            " (manual)" if attempt.manual else "",
            "delivered" if delivered else f"{attempt.error}; now {status}",
        )
        return status

    @staticmethod
    async def _health(
        repo: CallbackRepository,
        endpoint_id: str,
        attempt: DeliveryAttempt,
        final_failure: bool,
        failing_after: timedelta,
        now: datetime,
    ) -> None:
        endpoint = await repo.endpoint(endpoint_id, account_id=None)
        if endpoint is None:
            return
        last = {
            "last_attempt_at": attempt.requested_at,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if attempt.error is None:
            # A healthy endpoint's row is written at most once a HEALTH_RESOLUTION: on
            # PostgreSQL each write locks the row to commit, which would serialise every
            # worker's deliveries to one busy endpoint.
            fresh = endpoint.last_attempt_at is not None and (
                attempt.requested_at - endpoint.last_attempt_at < HEALTH_RESOLUTION
            )
            healthy = endpoint.failures_since is None and endpoint.failing_since is None
            if healthy and fresh and endpoint.last_status_code == attempt.status_code:
                return
            await repo.update_endpoint(endpoint_id, failures_since=None, failing_since=None, **last)
            return
        since = endpoint.failures_since or attempt.requested_at
        failing = endpoint.failing_since
        if failing is None and (final_failure or now - since >= failing_after):
            failing = now
            log.warning("webhook endpoint %s is failing since %s", endpoint_id, since.isoformat())
        await repo.update_endpoint(endpoint_id, failures_since=since, failing_since=failing, **last)


callbacks = CallbackService()
