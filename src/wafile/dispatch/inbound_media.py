"""The `whatsapp.inbound_media` job: a file a user sent, fetched into the media store.

Meta keeps an inbound media id for 7 days, so wafile fetches the file at once and
keeps it like an upload (checked, hashed, stored once per content). The Graph calls
and the download happen before the job's own transaction is touched, which then only
records the result. A transient failure (timeout, 5xx, throttling) is retried with
the queue's backoff; a lasting one is written on the inbound message as
`media_error`, so nobody waits for a file that will not come. Either way the same
transaction makes the message's `inbound.received` callback event, with a signed link
to the file (valid `WAFILE_CALLBACK_LINK_LIFETIME_SECONDS`) when there is one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from wafile.channels.whatsapp_cloud import GraphFailure
from wafile.core.jobs import Job
from wafile.core.provider_errors import Disposition, classify_whatsapp
from wafile.crypto import sealer_for
from wafile.db.engine import transaction
from wafile.db.webhooks import WebhookRepository
from wafile.dispatch.jobs import JobContext
from wafile.errors import ClientError
from wafile.services.accounts import accounts
from wafile.services.media import Upload, media
from wafile.services.senders import senders
from wafile.services.webhooks import webhooks

__all__ = ["fetch_inbound_media", "inbound_media_died"]

log = logging.getLogger(__name__)


async def fetch_inbound_media(job: Job, ctx: JobContext) -> None:
    inbound_id = str(job.payload["inbound_id"])
    settings = ctx.deps.settings
    # A short transaction of its own for what the download needs, closed before it.
    async with transaction(ctx.deps.sessions) as session:
        inbound = await WebhookRepository(session).inbound(inbound_id)
        if inbound is None or inbound.media_id or inbound.media_error:
            return  # gone, or done by an earlier attempt
        if inbound.provider_media_id is None:
            return
        sender, secrets = await senders.with_secrets(
            session, sealer_for(settings.secret_key), inbound.sender_id
        )
        account = await accounts.get(session, inbound.account_id)
    error: str | None = None
    media_id: str | None = None
    link: tuple[str, datetime] | None = None
    try:
        async with ctx.deps.cloud() as cloud:
            chunks = cloud.download(
                sender.whatsapp, secrets.access_token, inbound.provider_media_id
            )
            ingest = media.new_ingest(max_bytes=settings.max_upload_bytes)
            item = await media.upload(
                ctx.session,
                ctx.deps.store,
                account=account,
                ingest=ingest,
                chunks=ingest.raw(chunks, content_disposition=None),
                upload=Upload(
                    claimed_type=inbound.media_mime_type, filename=inbound.media_filename
                ),
                now=ctx.now,
                retention=settings.media_retention,
            )
            media_id = item.id
            url, expires = media.signed_url(
                item,
                secret=settings.secret_key,
                base_url=settings.effective_public_url,
                lifetime=settings.callback_link_lifetime_seconds,
                now=ctx.now.timestamp(),
            )
            link = (url, datetime.fromtimestamp(expires, UTC))
    except GraphFailure as exc:
        verdict = classify_whatsapp(exc.code, exc.http_status)
        if verdict.disposition is Disposition.RETRY and job.attempts_left > 0:
            raise  # the queue retries with backoff
        error = f"WhatsApp would not hand over the file: {exc}"
    except ClientError as exc:  # not a file wafile carries: too large, wrong type, empty
        error = f"the file was refused: {exc.detail}"
    if error is not None:
        log.warning("inbound %s: %s", inbound_id, error)
    await webhooks.record_inbound_media(
        ctx.session,
        inbound_id=inbound_id,
        media_id=media_id,
        error=error,
        media_link=link,
        now=ctx.now,
    )


async def inbound_media_died(job: Job, error: str, ctx: JobContext) -> None:
    """The fetch used up its attempts on unplanned errors: the message is reported
    without its file (`media_error`), rather than never."""
    await webhooks.record_inbound_media(
        ctx.session,
        inbound_id=str(job.payload["inbound_id"]),
        media_id=None,
        error=f"wafile gave up fetching the file after {job.attempts} attempts: {error}",
        media_link=None,
        now=ctx.now,
    )
