"""Callback repository: all SQL about webhook endpoints, the account's callback
secret, deliveries and their attempts. Secrets arrive and leave sealed.

The statements a delivery costs (storing it with its event, reading it for its job,
recording its attempts) run against the tables, not the mapped classes, and the read
is built once: they run several times per event, and the ORM's DML path and building
a statement with an aliased sub-select cost far more CPU than the database spends on
them (docs/jobs.md, "Customer callbacks")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wafile.core.callbacks import Delivery, DeliveryAttempt, DeliveryStatus, Endpoint
from wafile.db.tables import (
    CallbackAttemptRow,
    CallbackDeliveryRow,
    CallbackSecretRow,
    WebhookEndpointRow,
)
from wafile.db.types import UTCDateTime
from wafile.ids import new_id

__all__ = ["CallbackRepository"]

# Bulk UPDATEs here change rows no session holds: nothing to synchronise.
_NO_SYNC: Final = {"synchronize_session": False}
_deliveries = cast(Table, CallbackDeliveryRow.__table__)
_attempts = cast(Table, CallbackAttemptRow.__table__)
_endpoints = cast(Table, WebhookEndpointRow.__table__)
# for_sending labels the endpoint's columns with this (both tables have id, url...;
# and `endpoint_id` is a delivery column).
_EP: Final = "ep_"


def _endpoint(row: WebhookEndpointRow) -> Endpoint:
    return Endpoint(
        id=row.id,
        account_id=row.account_id,
        url=row.url,
        events=tuple(row.events),
        description=row.description,
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        failures_since=row.failures_since,
        failing_since=row.failing_since,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        format=row.format,
    )


def _labelled_endpoint(row: Mapping[str, Any]) -> tuple[Endpoint, str]:
    """The endpoint and its sealed secret from `for_sending`'s labelled columns."""
    return (
        Endpoint(
            id=row[_EP + "id"],
            account_id=row[_EP + "account_id"],
            url=row[_EP + "url"],
            events=tuple(row[_EP + "events"]),
            description=row[_EP + "description"],
            enabled=row[_EP + "enabled"],
            created_at=row[_EP + "created_at"],
            updated_at=row[_EP + "updated_at"],
            failures_since=row[_EP + "failures_since"],
            failing_since=row[_EP + "failing_since"],
            last_attempt_at=row[_EP + "last_attempt_at"],
            last_status_code=row[_EP + "last_status_code"],
            last_error=row[_EP + "last_error"],
            format=row[_EP + "format"],
        ),
        row[_EP + "sealed_secret"],
    )


def _delivery(row: Any) -> Delivery:
    """From a mapped row or a Core row of the table (same attribute names)."""
    return Delivery(
        id=row.id,
        account_id=row.account_id,
        endpoint_id=row.endpoint_id,
        message_id=row.message_id,
        inbound_id=row.inbound_id,
        url=row.url,
        event_id=row.event_id,
        event_type=row.event_type,
        sequence=row.sequence,
        body=row.body,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
    )


def _for_sending_statement() -> Select[Any]:
    """for_sending's SELECT, built once (see the module docstring): the deliveries
    named by the expanding `ids` parameter, each with its endpoint's columns (labelled
    `_EP`...) and `earlier_due`."""
    this, earlier = _deliveries, _deliveries.alias("earlier")
    same_target = or_(
        earlier.c.endpoint_id == this.c.endpoint_id,
        and_(
            this.c.endpoint_id.is_(None),
            earlier.c.endpoint_id.is_(None),
            earlier.c.url == this.c.url,
        ),
    )
    # Typed, so SQLite's text timestamps come back as aware datetimes.
    due = func.coalesce(earlier.c.next_attempt_at, earlier.c.created_at, type_=UTCDateTime())
    earlier_due = (
        select(func.min(due, type_=UTCDateTime()))
        .where(
            earlier.c.message_id == this.c.message_id,
            earlier.c.sequence < this.c.sequence,
            earlier.c.status == str(DeliveryStatus.PENDING),
            same_target,
        )
        .scalar_subquery()
    )
    return (
        select(
            this,
            *(column.label(_EP + column.name) for column in _endpoints.c),
            earlier_due.label("earlier_due"),
        )
        .select_from(this.outerjoin(_endpoints, _endpoints.c.id == this.c.endpoint_id))
        .where(this.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(this.c.sequence, this.c.created_at, this.c.id)
    )


_FOR_SENDING: Final = _for_sending_statement()


def _delivered_statements() -> tuple[Update, Insert]:
    """mark_delivered's UPDATE and log_delivered's INSERT, built once; each runs as an
    executemany (one text whatever the count). Parameters: `delivery_id`, `at` (when
    its request was made); the INSERT also `id`, `manual`, `status_code`,
    `latency_ms`, `response`."""
    c = _deliveries.c
    at = bindparam("at", type_=UTCDateTime())
    mark = (
        update(_deliveries)
        .where(c.id == bindparam("delivery_id"))
        .values(
            attempts=c.attempts + 1,
            last_attempt_at=at,
            status=str(DeliveryStatus.DELIVERED),
            delivered_at=at,
            next_attempt_at=None,
        )
    )
    # The attempt's number is the count the UPDATE left on the row (locked by it until
    # the commit); a delivery deleted meanwhile has no row, and so no attempt.
    numbered = select(
        bindparam("id", type_=_attempts.c.id.type),
        c.id,
        c.attempts,
        bindparam("manual", type_=_attempts.c.manual.type),
        at,
        bindparam("status_code", type_=_attempts.c.status_code.type),
        null(),
        bindparam("latency_ms", type_=_attempts.c.latency_ms.type),
        bindparam("response", type_=_attempts.c.response.type),
    ).where(c.id == bindparam("delivery_id"))
    log = insert(_attempts).from_select(
        [
            "id",
            "delivery_id",
            "number",
            "manual",
            "requested_at",
            "status_code",
            "error",
            "latency_ms",
            "response",
        ],
        numbered,
    )
    return mark, log


_MARK_DELIVERED, _LOG_DELIVERED = _delivered_statements()


def _attempt(row: CallbackAttemptRow) -> DeliveryAttempt:
    return DeliveryAttempt(
        number=row.number,
        manual=row.manual,
        requested_at=row.requested_at,
        status_code=row.status_code,
        error=row.error,
        latency_ms=row.latency_ms,
        response=row.response,
    )


class CallbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # Endpoints ----------------------------------------------------------------

    async def add_endpoint(self, endpoint: Endpoint, *, sealed_secret: str) -> None:
        self._session.add(
            WebhookEndpointRow(
                id=endpoint.id,
                account_id=endpoint.account_id,
                url=endpoint.url,
                events=list(endpoint.events),
                description=endpoint.description,
                enabled=endpoint.enabled,
                format=endpoint.format,
                sealed_secret=sealed_secret,
                created_at=endpoint.created_at,
                updated_at=endpoint.updated_at,
            )
        )
        await self._session.flush()

    async def endpoints_of(self, account_id: str, *, enabled_only: bool = False) -> list[Endpoint]:
        stmt = select(WebhookEndpointRow).where(WebhookEndpointRow.account_id == account_id)
        if enabled_only:
            stmt = stmt.where(WebhookEndpointRow.enabled.is_(True))
        stmt = stmt.order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id)
        return [_endpoint(row) for row in await self._session.scalars(stmt)]

    async def endpoint(self, endpoint_id: str, *, account_id: str | None) -> Endpoint | None:
        """An endpoint by id; with `account_id`, only that account's."""
        found = await self.endpoint_with_secret(endpoint_id, account_id=account_id)
        return found[0] if found else None

    async def endpoint_with_secret(
        self, endpoint_id: str, *, account_id: str | None
    ) -> tuple[Endpoint, str] | None:
        stmt = select(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id)
        if account_id is not None:
            stmt = stmt.where(WebhookEndpointRow.account_id == account_id)
        row = await self._session.scalar(stmt)
        return (_endpoint(row), row.sealed_secret) if row else None

    async def update_endpoint(self, endpoint_id: str, **values: Any) -> None:
        """Set columns of an endpoint (url, events, description, enabled, health...)."""
        if "events" in values:
            values["events"] = list(values["events"])
        await self._session.execute(
            update(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id).values(**values)
        )

    async def note_success(
        self, endpoint_id: str, *, at: datetime, status_code: int | None, resolution: timedelta
    ) -> bool:
        """Record a successful attempt on the endpoint (clearing its failures), unless the
        row already says so: healthy, the same status code, and a last attempt less than
        `resolution` before `at`. Then nothing is written (nor locked): False."""
        row = WebhookEndpointRow
        result = await self._session.execute(
            update(row)
            .where(
                row.id == endpoint_id,
                or_(
                    row.failures_since.is_not(None),
                    row.failing_since.is_not(None),
                    row.last_attempt_at.is_(None),
                    row.last_attempt_at <= at - resolution,
                    row.last_status_code.is_(None),
                    row.last_status_code != status_code,
                ),
            )
            .values(
                failures_since=None,
                failing_since=None,
                last_attempt_at=at,
                last_status_code=status_code,
                last_error=None,
            ),
            execution_options=_NO_SYNC,
        )
        return _rowcount(result) == 1

    async def delete_endpoint(self, endpoint_id: str, *, account_id: str) -> bool:
        result = await self._session.execute(
            delete(WebhookEndpointRow).where(
                WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.account_id == account_id
            )
        )
        return _rowcount(result) == 1

    # The account's callback_url secret -------------------------------------------

    def _insert(self) -> Any:
        postgres = self._session.get_bind().dialect.name == "postgresql"
        return pg_insert if postgres else sqlite_insert

    async def callback_secret(self, account_id: str) -> str | None:
        """The account's sealed callback_url secret, if it has one."""
        return await self._session.scalar(
            select(CallbackSecretRow.sealed_secret).where(
                CallbackSecretRow.account_id == account_id
            )
        )

    async def create_callback_secret(self, account_id: str, sealed: str, now: datetime) -> str:
        """Make `sealed` the account's secret unless it has one; the one it has then.

        Insert-or-keep, then read: concurrent first uses agree on one secret.
        """
        stmt = (
            self._insert()(CallbackSecretRow)
            .values(account_id=account_id, sealed_secret=sealed, created_at=now)
            .on_conflict_do_nothing(index_elements=[CallbackSecretRow.account_id])
        )
        await self._session.execute(stmt)
        kept = await self.callback_secret(account_id)
        assert kept is not None
        return kept

    async def replace_callback_secret(self, account_id: str, sealed: str, now: datetime) -> None:
        stmt = self._insert()(CallbackSecretRow).values(
            account_id=account_id, sealed_secret=sealed, created_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[CallbackSecretRow.account_id],
            set_={"sealed_secret": sealed, "created_at": now},
        )
        await self._session.execute(stmt)

    # Deliveries ---------------------------------------------------------------

    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await self._session.execute(
            insert(_deliveries),
            [
                {
                    "id": d.id,
                    "account_id": d.account_id,
                    "endpoint_id": d.endpoint_id,
                    "message_id": d.message_id,
                    "inbound_id": d.inbound_id,
                    "url": d.url,
                    "event_id": d.event_id,
                    "event_type": d.event_type,
                    "sequence": d.sequence,
                    "body": d.body,
                    "status": str(d.status),
                    "attempts": d.attempts,
                    "created_at": d.created_at,
                    "next_attempt_at": d.next_attempt_at,
                    "last_attempt_at": d.last_attempt_at,
                    "delivered_at": d.delivered_at,
                }
                for d in deliveries
            ],
        )

    async def delivery(self, delivery_id: str, *, account_id: str | None) -> Delivery | None:
        stmt = select(CallbackDeliveryRow).where(CallbackDeliveryRow.id == delivery_id)
        if account_id is not None:
            stmt = stmt.where(CallbackDeliveryRow.account_id == account_id)
        row = await self._session.scalar(stmt)
        return _delivery(row) if row else None

    async def for_sending(
        self, delivery_ids: Sequence[str]
    ) -> list[tuple[Delivery, tuple[Endpoint, str] | None, datetime | None]]:
        """What a delivery job needs, in one statement: each delivery (those that still
        exist, in sequence order), its endpoint with its sealed secret (None for a
        `callback_url` delivery, or when the endpoint is gone), and when the next
        attempt of an earlier event of the same message to the same target is due
        (the soonest if several are pending; None when none is: delivery order, see
        services/callbacks.py). Inbound events have no order: None."""
        if not delivery_ids:
            return []
        result = await self._session.execute(_FOR_SENDING, {"ids": list(delivery_ids)})
        found: list[tuple[Delivery, tuple[Endpoint, str] | None, datetime | None]] = []
        for row in result:
            fields = row._mapping
            target = _labelled_endpoint(fields) if fields[_EP + "id"] is not None else None
            found.append((_delivery(row), target, fields["earlier_due"]))
        return found

    async def mark_delivered(self, delivered: Sequence[tuple[str, DeliveryAttempt]]) -> None:
        """Count one successful request on each delivery and mark it delivered as of
        that request: one executemany. Then `log_delivered` the same list."""
        if delivered:
            await self._session.execute(
                _MARK_DELIVERED,
                [{"delivery_id": i, "at": a.requested_at} for i, a in delivered],
            )

    async def log_delivered(self, delivered: Sequence[tuple[str, DeliveryAttempt]]) -> None:
        """Log the successful attempts `mark_delivered` counted, numbered by that count
        (`attempt.number` is ignored), in one executemany; nothing for a delivery gone."""
        if delivered:
            await self._session.execute(
                _LOG_DELIVERED,
                [
                    {
                        "id": new_id("dla"),
                        "delivery_id": i,
                        "manual": a.manual,
                        "at": a.requested_at,
                        "status_code": a.status_code,
                        "latency_ms": a.latency_ms,
                        "response": a.response,
                    }
                    for i, a in delivered
                ],
            )

    async def count_attempt(
        self,
        delivery_id: str,
        attempt: DeliveryAttempt,
        *,
        only_if_pending: bool,
        **delivery_values: Any,
    ) -> tuple[int, DeliveryStatus, bool] | None:
        """Count one request on the delivery and set its columns (status,
        next_attempt_at...). With `only_if_pending` the columns are set only while the
        delivery is pending (else the request is only counted). (The number the
        attempt got, the delivery's status after, whether the columns were set); None
        when the delivery is gone. Log the attempt with `log_attempts`.

        An UPDATE ... RETURNING: no read first (and a second UPDATE only when the
        delivery was no longer pending)."""
        c = _deliveries.c
        counted = {"attempts": c.attempts + 1, "last_attempt_at": attempt.requested_at}
        returning = (c.attempts, c.status)
        stmt = update(_deliveries).where(c.id == delivery_id)
        if only_if_pending:
            stmt = stmt.where(c.status == str(DeliveryStatus.PENDING))
        stmt = stmt.values(**counted, **delivery_values).returning(*returning)
        row = (await self._session.execute(stmt)).first()
        applied = row is not None
        if row is None and only_if_pending:
            stmt = (
                update(_deliveries)
                .where(c.id == delivery_id)
                .values(**counted)
                .returning(*returning)
            )
            row = (await self._session.execute(stmt)).first()
        if row is None:
            return None
        return int(row[0]), DeliveryStatus(row[1]), applied

    async def log_attempts(self, attempts: Sequence[tuple[str, DeliveryAttempt]]) -> None:
        """Add (delivery id, attempt) to the delivery log, numbered as given, in one
        statement."""
        if not attempts:
            return
        await self._session.execute(
            insert(_attempts),
            [
                {
                    "id": new_id("dla"),
                    "delivery_id": delivery_id,
                    "number": a.number,
                    "manual": a.manual,
                    "requested_at": a.requested_at,
                    "status_code": a.status_code,
                    "error": a.error,
                    "latency_ms": a.latency_ms,
                    "response": a.response,
                }
                for delivery_id, a in attempts
            ],
        )

    async def page(
        self,
        account_id: str,
        *,
        limit: int,
        before: tuple[datetime, str] | None,
        endpoint_id: str | None = None,
        message_id: str | None = None,
        status: str | None = None,
    ) -> list[Delivery]:
        """An account's deliveries, newest first; `before` is the last (created_at, id) seen."""
        stmt = select(CallbackDeliveryRow).where(CallbackDeliveryRow.account_id == account_id)
        if endpoint_id is not None:
            stmt = stmt.where(CallbackDeliveryRow.endpoint_id == endpoint_id)
        if message_id is not None:
            stmt = stmt.where(CallbackDeliveryRow.message_id == message_id)
        if status is not None:
            stmt = stmt.where(CallbackDeliveryRow.status == status)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(
                or_(
                    CallbackDeliveryRow.created_at < at,
                    and_(CallbackDeliveryRow.created_at == at, CallbackDeliveryRow.id < last_id),
                )
            )
        stmt = stmt.order_by(
            CallbackDeliveryRow.created_at.desc(), CallbackDeliveryRow.id.desc()
        ).limit(limit)
        return [_delivery(row) for row in await self._session.scalars(stmt)]

    async def attempts_of(self, delivery_ids: Iterable[str]) -> dict[str, list[DeliveryAttempt]]:
        ids = list(delivery_ids)
        found: dict[str, list[DeliveryAttempt]] = {i: [] for i in ids}
        if not ids:
            return found
        stmt = (
            select(CallbackAttemptRow)
            .where(CallbackAttemptRow.delivery_id.in_(ids))
            .order_by(CallbackAttemptRow.delivery_id, CallbackAttemptRow.number)
        )
        for row in await self._session.scalars(stmt):
            found[row.delivery_id].append(_attempt(row))
        return found


def _rowcount(result: Any) -> int:
    # DML results are CursorResults; the typed Result does not declare rowcount.
    return int(getattr(result, "rowcount", 0) or 0)
