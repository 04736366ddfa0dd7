"""The schema. Change it only together with a new migration in `migrations/versions/`.

`tests/integration/test_migrations.py` fails when these tables and the migrations
disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wafile.db.types import UTCDateTime

__all__ = [
    "AccountRow",
    "ApiKeyRow",
    "AttemptRefRow",
    "Base",
    "BlobRow",
    "CallbackAttemptRow",
    "CallbackDeliveryRow",
    "CallbackSecretRow",
    "ConversationWindowRow",
    "InboundMessageRow",
    "JobRow",
    "MediaProviderRow",
    "MediaRow",
    "MessageEventRow",
    "MessageRow",
    "ProviderStatusRow",
    "SendRateRow",
    "SenderRow",
    "WebhookEndpointRow",
    "WebhookReceiptRow",
    "WhatsAppMediaRow",
]

# Named constraints, so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The plan a send without `channels` follows, as the API takes it; NULL: WhatsApp only.
    default_channels: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    # The public id embedded in the key; the secret is stored only as its SHA-256.
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_api_keys_account_id", "account_id"),)


class BlobRow(Base):
    """One stored object per distinct content; `ref_count` media rows point at it."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    ref_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MediaRow(Base):
    __tablename__ = "media"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    filename: Mapped[str] = mapped_column(Text)
    mime_type: Mapped[str] = mapped_column(String(255))
    category: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), ForeignKey("blobs.sha256"))
    file_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    whatsapp_sendable: Mapped[bool] = mapped_column(Boolean)
    whatsapp_sent_as: Mapped[str | None] = mapped_column(String(16), nullable=True)
    whatsapp_reason: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)  # fetched from

    __table_args__ = (
        # Listing: an account's media newest first, paged by (created_at, id).
        Index("ix_media_account_created", "account_id", "created_at", "id"),
        Index("ix_media_expires_at", "expires_at"),
        Index("ix_media_sha256", "sha256"),
    )


class SenderRow(Base):
    """A business number on a channel; credentials only sealed (see wafile.crypto)."""

    __tablename__ = "senders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    sealed_secrets: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("account_id", "name"),)


class JobRow(Base):
    """One job of the queue (`db/jobs.py` holds all its SQL, docs/jobs.md the why)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Unique but nullable: most jobs have none; a singleton (the recurring sweep) or
    # "one send job per attempt" has one, and a second enqueue of it is ignored.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Among due jobs, higher first (core.jobs.Priority): a backlog never delays a timer.
    priority: Mapped[int] = mapped_column(SmallInteger, server_default="0")

    __table_args__ = (
        # The claim: live jobs (dead_at IS NULL) due by now, oldest run_at first; also
        # the worker's "when is the next one due" and the listing of dead jobs. The
        # lease columns stay unindexed on purpose: claims and heartbeats then update
        # no index, which lets PostgreSQL update the rows in place (HOT).
        Index("ix_jobs_claim", "dead_at", "run_at"),
    )


class WebhookReceiptRow(Base):
    """A provider's webhook body exactly as received (signature already checked),
    kept until a job has applied it: acknowledged fast, processed reliably."""

    __tablename__ = "webhook_receipts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(40), ForeignKey("senders.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ConversationWindowRow(Base):
    """When a user last wrote to a sender: the 24-hour window opens from there."""

    __tablename__ = "conversation_windows"

    sender_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True
    )
    wa_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundMessageRow(Base):
    """A message a user sent to one of the account's senders (deduplicated by wamid)."""

    __tablename__ = "inbound_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    sender_id: Mapped[str] = mapped_column(String(40), ForeignKey("senders.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(200))
    from_number: Mapped[str] = mapped_column(String(32))
    profile_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider_media_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    media_filename: Mapped[str | None] = mapped_column(Text, nullable=True)
    media_mime_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The file, once fetched into the media store (or why it could not be).
    media_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    media_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        UniqueConstraint("sender_id", "provider_id"),
        Index("ix_inbound_messages_account_received", "account_id", "received_at", "id"),
    )


class ProviderStatusRow(Base):
    """Each (message, status) a provider reported, once: the dedupe record and the raw
    timeline the message state machine applies."""

    __tablename__ = "provider_statuses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(40), ForeignKey("senders.id", ondelete="CASCADE"))
    provider_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_title: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("sender_id", "provider_id", "status"),)


class MessageRow(Base):
    """One file to one recipient. Its truth is its event log (`message_events`),
    replayed through core.message_state; `state` and `status` are kept beside it."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    # Plain ids, no foreign keys: a message outlives the sender and the file it used
    # (retention deletes media; history stays).
    sender_id: Mapped[str] = mapped_column(String(40))
    to_number: Mapped[str] = mapped_column(String(32))
    # NULL until the worker has fetched media_url (with the named provider's credentials).
    media_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    media_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)
    filename: Mapped[str] = mapped_column(Text)
    caption: Mapped[str | None] = mapped_column(Text, nullable=True)
    reply_to: Mapped[str | None] = mapped_column(String(200), nullable=True)
    template: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    # core.callback_formats: what callback_url receives ("standard", or the vendor's
    # shape and signature when a dialect's per-send callback URL set it).
    callback_format: Mapped[str] = mapped_column(String(32), server_default="standard")
    # The API it came through: "native" (API, CLI, dashboard) or a dialect's name.
    origin: Mapped[str] = mapped_column(String(32), server_default="native")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    # core.plan.plan_to_json; NULL for messages from before plans (WhatsApp only).
    plan: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # core.message_codec.snapshot_to_json: the state after the last event (and its
    # number); NULL for messages from before snapshots, whose log is replayed.
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key"),
        Index("ix_messages_account_created", "account_id", "created_at", "id"),
        # One recipient's messages: `?to=` and an inbound event's conversation minutes.
        Index("ix_messages_account_to_created", "account_id", "to_number", "created_at"),
    )


class MessageEventRow(Base):
    """Every event a message saw, applied or not, in order (its audit trail)."""

    __tablename__ = "message_events"

    message_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(32))
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    applied: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AttemptRefRow(Base):
    """A provider's message id back to wafile's message and attempt (for statuses)."""

    __tablename__ = "attempt_refs"

    sender_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True
    )
    provider_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("messages.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)


class WhatsAppMediaRow(Base):
    """A file already uploaded to a sender's number: Meta keeps media ids 30 days, so
    the same content is uploaded once per sender, not once per message."""

    __tablename__ = "whatsapp_media"

    sender_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True
    )
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SendRateRow(Base):
    """A sender's messages-per-second bucket (core/rate_limit.py), shared by all workers.

    Integer microseconds since the epoch, not timestamps: the limiter does its
    arithmetic in one statement, the same on SQLite and PostgreSQL."""

    __tablename__ = "send_rate"

    sender_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("senders.id", ondelete="CASCADE"), primary_key=True
    )
    next_at_us: Mapped[int] = mapped_column(BigInteger)
    retry_at_us: Mapped[int] = mapped_column(BigInteger)


class WebhookEndpointRow(Base):
    """An account's callback receiver: every matching event is POSTed there, signed
    with its own secret (sealed: it is needed in clear to sign)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # core.callback_formats: "standard", or a vendor dialect's shape and signature.
    format: Mapped[str] = mapped_column(String(32), server_default="standard")
    # Health: the first failed attempt since the last success, and since when the
    # endpoint counts as failing (services/callbacks.py says when).
    failures_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_webhook_endpoints_account", "account_id", "created_at"),)


class CallbackSecretRow(Base):
    """The account's secret for per-message `callback_url` deliveries (sealed)."""

    __tablename__ = "callback_secrets"

    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallbackDeliveryRow(Base):
    """One event to one target (an endpoint, or the message's callback_url when
    `endpoint_id` is null): the exact body, built when the event happened, and how
    its delivery goes. The event is of a message (`message_id`) or of a message a user
    sent in (`inbound_id`): exactly one of the two is set."""

    __tablename__ = "callback_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=True
    )
    message_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("messages.id", ondelete="CASCADE"), nullable=True
    )
    inbound_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("inbound_messages.id", ondelete="CASCADE"), nullable=True
    )
    url: Mapped[str] = mapped_column(Text)  # the target when the event happened
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        # The delivery logs, newest first, paged by (created_at, id).
        Index("ix_callback_deliveries_endpoint", "endpoint_id", "created_at", "id"),
        Index("ix_callback_deliveries_account", "account_id", "created_at", "id"),
        # Earlier events of the same message (delivery order).
        Index("ix_callback_deliveries_message", "message_id", "sequence"),
        # The deliveries an inbound message's removal removes (ON DELETE CASCADE).
        Index("ix_callback_deliveries_inbound", "inbound_id"),
        CheckConstraint("(message_id IS NULL) <> (inbound_id IS NULL)", name="one_subject"),
    )


class CallbackAttemptRow(Base):
    """One HTTP request of a delivery: what came back (never a secret)."""

    __tablename__ = "callback_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("callback_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_callback_attempts_delivery", "delivery_id", "number"),)


class MediaProviderRow(Base):
    """A named credential for fetching an account's remote files; the secret only sealed."""

    __tablename__ = "media_providers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    auth: Mapped[str] = mapped_column(String(16))  # basic | bearer
    username: Mapped[str | None] = mapped_column(Text, nullable=True)
    allowed: Mapped[list[str]] = mapped_column(JSON)
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("account_id", "name"),)
