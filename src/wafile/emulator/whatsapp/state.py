"""`WhatsAppEmulator`: all the emulator's state, in memory, behind one object.

The Graph routes (app.py) and the control API (control.py) only translate HTTP to the
methods here. Background work (a message's status timeline, webhook posts and their
retries, fetching `link` media) runs in tasks created on the serving loop the first
time it is needed, so the object works standalone and mounted inside another app
alike; `aclose()` cancels that work and closes the HTTP client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, Final, TypeVar

import httpx

from wafile.emulator.background import Background
from wafile.emulator.whatsapp import rules
from wafile.emulator.whatsapp.graph_errors import (
    AsyncError,
    GraphError,
    async_error,
    invalid_parameter,
    invalid_token,
    media_upload_error,
    pair_rate_limited,
    parameter_value_invalid,
    rate_limited,
    template_format_mismatch,
    template_not_found,
    template_param_mismatch,
    template_unusable,
    unknown_object,
)
from wafile.emulator.whatsapp.magic import MAGIC_PHONES, PhoneSource, behaviour_of
from wafile.emulator.whatsapp.outgoing import (
    MediaRef,
    ReadReceipt,
    TemplateRequest,
    parse_send,
)
from wafile.emulator.whatsapp.records import Inbound, Media, Outbound, b64_sha256
from wafile.emulator.whatsapp.webhooks import (
    USER_AGENT,
    Delivery,
    StatusBatch,
    WebhookLog,
    envelope,
    post_with_retries,
    verify_webhook,
)
from wafile.emulator.whatsapp.world import (
    BusinessNumber,
    Phone,
    Settings,
    Template,
    Timing,
    World,
    WorldError,
    check_unique,
    normalise_number,
    parse_number,
    parse_phone,
    parse_settings,
    parse_template,
    parse_timing,
    phone_document,
    settings_document,
    timing_document,
    world_document,
)

__all__ = ["DOWNLOAD_PATH", "NotFound", "WhatsAppEmulator"]

log = logging.getLogger(__name__)
T = TypeVar("T")

WINDOW: Final = 24 * 3600.0  # customer-service window, opened by the user's message
URL_LIFETIME: Final = 300.0  # media download URLs, like Meta's
UPLOAD_LIFETIME: Final = 30 * 86400.0
INBOUND_LIFETIME: Final = 7 * 86400.0
MESSAGES_KEPT: Final = 20_000  # per direction; the oldest are forgotten first
MEDIA_BYTES_KEPT: Final = 512 * rules.MB  # stored media beyond this evict the oldest
DOWNLOAD_PATH: Final = "whatsapp_business/attachments/"  # Meta's lookaside path


class NotFound(LookupError):
    """A control API lookup for something the world does not hold."""


class WhatsAppEmulator:
    """The emulated WhatsApp Cloud API: world, media, messages, windows, rates, webhooks.

    `now` is the wall clock for wall-clock rules (24-hour window, URL expiry, media
    lifetime, throughput and pair rates); scripted delays and retries sleep on the loop,
    scaled by the world's Timing. Use it from the loop that serves its app.
    """

    def __init__(
        self,
        world: World,
        *,
        timing: Timing | None = None,
        now: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._initial = replace(world, timing=timing) if timing is not None else world
        self._now = now
        self._background = Background(
            name="WhatsApp emulator", user_agent=USER_AGENT, transport=transport
        )
        self.log = WebhookLog()
        self._clear()

    # -- life cycle -------------------------------------------------------------------

    @property
    def world(self) -> World:
        return self._world

    @property
    def timing(self) -> Timing:
        return self._world.timing

    @property
    def settings(self) -> Settings:
        return self._world.settings

    @property
    def pending_tasks(self) -> int:
        """Background tasks still running (timelines, webhook posts)."""
        return self._background.pending

    def _clear(self) -> None:
        self._world = self._initial
        self._media: OrderedDict[str, Media] = OrderedDict()
        self._media_bytes = 0
        self._links: dict[str, tuple[str, float]] = {}  # download key -> (media id, expiry)
        self._outbound: OrderedDict[str, Outbound] = OrderedDict()
        self._inbound: OrderedDict[str, Inbound] = OrderedDict()
        self._inboxes: dict[str, deque[str]] = {}  # phone -> outbound ids
        self._outboxes: dict[str, deque[str]] = {}  # phone -> inbound ids
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._window_epoch: dict[str, float] = {}
        self._throughput: dict[str, deque[float]] = {}
        self._pairs: dict[tuple[str, str], tuple[float, float]] = {}
        self._throttled: dict[str, int] = {}
        self._batches: dict[str, StatusBatch] = {}  # phone_number_id -> the open batch
        self.log.clear()
        started = self._now()
        for phone in self._world.phones:
            if phone.window_open:
                self._window_epoch[phone.number] = started

    def reset(self) -> None:
        """Back to the world the emulator was created with; pending work is cancelled."""
        self._background.cancel()
        self._clear()

    async def aclose(self) -> None:
        """Cancel background tasks and close the HTTP client (from any loop)."""
        await self._background.aclose()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return self._background.spawn(work)

    def _http(self) -> httpx.AsyncClient:
        return self._background.http()

    # -- access -----------------------------------------------------------------------

    def authorise(self, token: str | None, phone_number_id: str, method: str) -> BusinessNumber:
        """The business number a request addresses, if `token` may act for it."""
        self._check_token(token)
        number = self._world.number(phone_number_id)
        if number is None:
            raise unknown_object(phone_number_id, method)
        if number.access_token != token:
            raise invalid_token(
                f"the access token does not belong to phone number ID {phone_number_id}"
            )
        return number

    def _check_token(self, token: str | None) -> list[BusinessNumber]:
        if not token:
            raise invalid_token("An access token is required to request this resource")
        numbers = [n for n in self._world.numbers if n.access_token == token]
        if not numbers:
            raise invalid_token()
        return numbers

    def _media_for_token(
        self, token: str | None, media_id: str, phone_number_id: str | None, method: str
    ) -> Media:
        numbers = self._check_token(token)
        media = self._live_media(media_id)
        owner = self._world.number(media.owner) if media else None
        allowed = media is not None and any(
            n.phone_number_id == media.owner or (owner and n.waba_id == owner.waba_id)
            for n in numbers
        )
        if media is None or not allowed or phone_number_id not in (None, media.owner):
            raise unknown_object(media_id, method)
        return media

    def _live_media(self, media_id: str) -> Media | None:
        media = self._media.get(media_id)
        if media is not None and self._now() >= media.expires:
            self._drop_media(media_id)
            return None
        return media

    # -- media ------------------------------------------------------------------------

    def upload(
        self, number: BusinessNumber, data: bytes, mime_type: str, filename: str | None
    ) -> str:
        problem = rules.upload_problem(mime_type, data, self.settings.extra_document_types)
        if problem is not None:
            code, details = problem
            raise invalid_parameter(details) if code == 100 else media_upload_error(details)
        media = self._store_media(
            owner=number.phone_number_id,
            mime_type=rules.bare_mime(mime_type),
            data=data,
            filename=filename,
            lifetime=UPLOAD_LIFETIME,
            origin="upload",
        )
        return media.id

    def _store_media(
        self,
        *,
        owner: str,
        mime_type: str,
        data: bytes,
        filename: str | None,
        lifetime: float,
        origin: str,
    ) -> Media:
        now = self._now()
        media = Media(
            id=str(10**15 + secrets.randbelow(9 * 10**15)),
            owner=owner,
            mime_type=mime_type,
            data=data,
            filename=filename,
            created=now,
            expires=now + lifetime,
            origin=origin,
        )
        self._media[media.id] = media
        self._media_bytes += len(data)
        while self._media_bytes > MEDIA_BYTES_KEPT and len(self._media) > 1:
            self._drop_media(next(iter(self._media)))
        return media

    def _drop_media(self, media_id: str) -> bool:
        media = self._media.pop(media_id, None)
        if media is None:
            return False
        self._media_bytes -= len(media.data)
        return True

    def media_info(
        self, token: str | None, media_id: str, phone_number_id: str | None, base_url: str
    ) -> dict[str, Any]:
        """GET /{media-id}: metadata and a download URL valid for five minutes."""
        media = self._media_for_token(token, media_id, phone_number_id, "GET")
        now = self._now()
        self._links = {k: v for k, v in self._links.items() if v[1] > now}
        key = secrets.token_urlsafe(24)
        expires = now + URL_LIFETIME
        self._links[key] = (media.id, expires)
        url = f"{base_url}{DOWNLOAD_PATH}?mid={media.id}&ext={int(expires)}&hash={key}"
        return {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": str(len(media.data)),  # a string, as in Meta's spec
            "id": media.id,
        }

    def delete_media(self, token: str | None, media_id: str, phone_number_id: str | None) -> None:
        media = self._media_for_token(token, media_id, phone_number_id, "DELETE")
        self._drop_media(media.id)

    def download(self, token: str | None, key: str) -> Media:
        """The file behind a download URL: needs the Bearer token and an unexpired URL."""
        link = self._links.get(key)
        numbers = self._check_token(token)
        if link is None or self._now() >= link[1]:
            raise _expired_url()
        media = self._live_media(link[0])
        if media is None:
            raise _expired_url()
        owner = self._world.number(media.owner)
        if not any(
            n.phone_number_id == media.owner or (owner and n.waba_id == owner.waba_id)
            for n in numbers
        ):
            raise _expired_url()
        return media

    def media_list(self) -> list[dict[str, Any]]:
        return [
            {
                "id": m.id,
                "phone_number_id": m.owner,
                "mime_type": m.mime_type,
                "file_size": len(m.data),
                "sha256": m.sha256,
                "filename": m.filename,
                "origin": m.origin,
                "created": m.created,
                "expires": m.expires,
            }
            for m in self._media.values()
            if m.expires > self._now()
        ]

    # -- sending ----------------------------------------------------------------------

    async def send(self, number: BusinessNumber, body: object) -> dict[str, Any]:
        """POST /{phone-number-id}/messages: a message (or a read receipt)."""
        request = parse_send(body)
        if isinstance(request, ReadReceipt):
            self._mark_read(number, request)
            return {"success": True}
        phone, _ = self._behaviour(request.to)
        template = self._check_template(request.template) if request.template else None
        media_ref = request.media or (request.template.header_media if request.template else None)
        stored = self._media_to_send(number, media_ref)
        self._check_rates(number, phone)

        msg = Outbound(
            id=_wamid(request.to),
            phone_number_id=number.phone_number_id,
            display_phone_number=number.display_phone_number,
            to=request.to,
            type=request.type,
            created=self._now(),
            window_open=self._window_open(number.phone_number_id, phone),
            text=request.text,
            caption=media_ref.caption if media_ref else None,
            filename=(media_ref.filename if media_ref else None)
            or (stored.filename if stored and request.type == "document" else None),
            media_id=media_ref.id if media_ref else None,
            link=media_ref.link if media_ref else None,
            template=request.template,
            template_category=template.category if template else None,
            reaction=request.reaction,
            context_message_id=request.context_message_id,
            biz_opaque_callback_data=request.biz_opaque_callback_data,
            content=stored.data if stored else None,
            mime_type=stored.mime_type if stored else None,
        )
        self._remember_outbound(msg)
        self._spawn(self._timeline(msg, number, phone))
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": request.to_input, "wa_id": request.to}],
            "messages": [{"id": msg.id, "message_status": "accepted"}],
        }

    def _behaviour(self, number: str) -> tuple[Phone, PhoneSource]:
        return behaviour_of(number, self._world.phone(number))

    def _check_template(self, request: TemplateRequest) -> Template:
        template = self._world.template(request.name, request.language)
        if template is None or template.status in {"PENDING", "REJECTED"}:
            raise template_not_found(request.name, request.language)
        if template.status in {"PAUSED", "DISABLED"}:
            raise template_unusable(template.name, template.status)
        want, got = template.header, request.header_kind
        if want in {"document", "image", "video"}:
            if got is None:
                raise template_param_mismatch(f"header: expected 1 {want} parameter, received 0")
            if got != want:
                raise template_format_mismatch(f"header: expected {want}, received {got}")
        elif want == "text":
            if got not in {None, "text"}:
                raise template_format_mismatch(f"header: expected text, received {got}")
            if len(request.header_texts) != template.header_params:
                raise template_param_mismatch(
                    f"header: expected {template.header_params} parameters, "
                    f"received {len(request.header_texts)}"
                )
        elif got is not None:
            raise template_param_mismatch("header: the template has no header parameters")
        if len(request.body) != template.body_params:
            raise template_param_mismatch(
                f"body: expected {template.body_params} parameters, received {len(request.body)}"
            )
        return template

    def _media_to_send(self, number: BusinessNumber, ref: MediaRef | None) -> Media | None:
        if ref is None or ref.id is None:
            return None
        media = self._live_media(ref.id)
        if media is None or media.owner != number.phone_number_id:
            raise parameter_value_invalid(
                f"Media id {ref.id} is not valid for phone number ID {number.phone_number_id}."
            )
        return media

    def _check_rates(self, number: BusinessNumber, phone: Phone) -> None:
        """Throughput per number (130429), pair rate per user (131056), magic throttling."""
        used = self._throttled.get(phone.number, 0)
        if used < phone.throttle_first:
            self._throttled[phone.number] = used + 1
            raise rate_limited()
        now = self._now()
        window = self._throughput_window(number.phone_number_id, now)
        if len(window) >= number.mps:
            raise rate_limited()
        settings = self.settings
        if settings.pair_rate_limit:
            key = (number.phone_number_id, phone.number)
            tokens, last = self._pairs.get(key, (float(settings.pair_burst), now))
            tokens = min(
                float(settings.pair_burst),
                tokens + max(0.0, now - last) / settings.pair_interval,
            )
            if tokens < 1:
                self._pairs[key] = (tokens, now)
                raise pair_rate_limited()
            self._pairs[key] = (tokens - 1, now)
        window.append(now)

    def _throughput_window(self, phone_number_id: str, now: float) -> deque[float]:
        """Messages (both directions) of this number within the last second."""
        window = self._throughput.setdefault(phone_number_id, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        return window

    def _window_open(self, phone_number_id: str, phone: Phone) -> bool:
        last = self._last_inbound.get((phone_number_id, phone.number))
        if last is None:
            last = self._window_epoch.get(phone.number)
        return last is not None and self._now() - last < WINDOW

    def _remember_outbound(self, msg: Outbound) -> None:
        self._outbound[msg.id] = msg
        self._inboxes.setdefault(msg.to, deque(maxlen=MESSAGES_KEPT)).append(msg.id)
        while len(self._outbound) > MESSAGES_KEPT:
            self._outbound.popitem(last=False)

    def _mark_read(self, number: BusinessNumber, receipt: ReadReceipt) -> None:
        target = self._inbound.get(receipt.message_id)
        if target is None or target.phone_number_id != number.phone_number_id:
            raise invalid_parameter(f"Message id {receipt.message_id} is not a received message.")
        # Marking one message read marks the earlier ones of that thread read too
        # (earlier by arrival: the store keeps them in that order).
        for item in self._inbound.values():
            if item.phone_number_id == target.phone_number_id and item.sender == target.sender:
                item.read = True
            if item is target:
                break

    async def _timeline(self, msg: Outbound, number: BusinessNumber, phone: Phone) -> None:
        """sent -> delivered -> read (as scripted), or failed; each webhook awaited in turn,
        retries included, so one message's webhooks always arrive in that order."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        error = await self._failure(msg, phone)
        if error is not None:
            msg.content = None  # the phone never got it
            await self._emit_status(msg, number, "failed", error)
            return
        await self._emit_status(msg, number, "sent")
        if phone.deliver_after is None:
            return
        wait = started + self.timing.delay(phone.deliver_after) - loop.time()
        await asyncio.sleep(max(0.0, wait))
        await self._emit_status(msg, number, "delivered")
        if phone.read_after is None:
            return
        await asyncio.sleep(self.timing.delay(phone.read_after))
        await self._emit_status(msg, number, "read")

    async def _failure(self, msg: Outbound, phone: Phone) -> AsyncError | None:
        """Why Meta would fail this accepted message (sent as a `failed` webhook)."""
        if not phone.on_whatsapp:
            return async_error(131026)
        if msg.type != "template" and not msg.window_open:
            return async_error(131047)
        if phone.fail_with is not None:
            return async_error(phone.fail_with)
        kind = msg.media_kind
        if kind is None:
            return None
        if msg.content is None and msg.link is not None:
            fetched = await self._fetch_link(msg.link)
            if isinstance(fetched, str):
                return async_error(131053, fetched)
            msg.content, msg.mime_type = fetched
        content, mime = msg.content or b"", msg.mime_type or ""
        problem = rules.send_problem(kind, mime, content, self.settings.extra_document_types)
        if problem is not None:
            return async_error(131053, problem)
        if msg.template is not None and kind == "document" and mime != "application/pdf":
            return async_error(131053, "Template document headers take PDF files only.")
        if phone.fail_files_with is not None:
            return async_error(phone.fail_files_with)
        return None

    async def _fetch_link(self, url: str) -> tuple[bytes, str] | str:
        """The media behind a `link`, as Meta fetches it; a string says why it failed."""
        try:
            async with self._http().stream(
                "GET", url, timeout=self.timing.media_fetch_timeout, follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    return f"Downloading {url} failed: HTTP {response.status_code}."
                mime = rules.bare_mime(response.headers.get("content-type", ""))
                if not mime:
                    return f"Downloading {url} failed: the response has no Content-Type."
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > rules.UPLOAD_MAX:
                        return f"{url} is larger than {rules.UPLOAD_MAX} bytes."
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            return f"Downloading {url} failed: {type(exc).__name__}."
        return b"".join(chunks), mime

    async def _emit_status(
        self,
        msg: Outbound,
        number: BusinessNumber,
        status: str,
        error: AsyncError | None = None,
    ) -> None:
        now = self._now()
        msg.status = status
        record: dict[str, Any] = {"status": status, "timestamp": now}
        body: dict[str, Any] = {
            "id": msg.id,
            "status": status,
            "timestamp": str(int(now)),
            "recipient_id": msg.to,
        }
        if error is not None:
            record["errors"] = body["errors"] = [error.to_json()]
        elif status in {"sent", "delivered"}:
            body.update(self._pricing(msg, now, first=status == "sent"))
        if msg.biz_opaque_callback_data is not None:
            body["biz_opaque_callback_data"] = msg.biz_opaque_callback_data
        msg.statuses.append(record)
        current = self._world.number(number.phone_number_id) or number
        if self.settings.webhook_batch_max > 1:
            await self._batched(current, msg.id, status, body)
            return
        payload = envelope(current, {"statuses": [body]})
        await self._post(current, "status", msg.id, status, payload, ((msg.id, status),))

    async def _batched(
        self, number: BusinessNumber, message_id: str, status: str, body: dict[str, Any]
    ) -> None:
        """Join the number's open batch (opening one if none) and wait until it is posted."""
        batch = self._batches.get(number.phone_number_id)
        if batch is None:
            batch = StatusBatch(number=number, done=asyncio.get_running_loop().create_future())
            self._batches[number.phone_number_id] = batch
            self._spawn(self._post_batch(batch))
        batch.items.append((message_id, status, body))
        if len(batch.items) >= self.settings.webhook_batch_max:
            self._close_batch(batch)
        # Shielded: one waiter cancelled must not cancel the batch the others wait on.
        await asyncio.shield(batch.done)

    def _close_batch(self, batch: StatusBatch) -> None:
        """No more statuses join this batch; the next one opens a new batch."""
        if self._batches.get(batch.number.phone_number_id) is batch:
            del self._batches[batch.number.phone_number_id]
        batch.full.set()

    async def _post_batch(self, batch: StatusBatch) -> None:
        """Wait up to `webhook_batch_wait` for the batch to fill, then post it as one
        envelope holding all its statuses, retried as a unit."""
        try:
            with contextlib.suppress(TimeoutError):  # the wait is over: post what came
                await asyncio.wait_for(batch.full.wait(), self.settings.webhook_batch_wait)
            self._close_batch(batch)
            number = self._world.number(batch.number.phone_number_id) or batch.number
            payload = envelope(number, {"statuses": [body for _, _, body in batch.items]})
            pairs = tuple((message_id, status) for message_id, status, _ in batch.items)
            only = pairs[0] if len(pairs) == 1 else (None, None)
            await self._post(number, "status", only[0], only[1], payload, pairs)
        except BaseException:
            batch.done.cancel()
            raise
        batch.done.set_result(None)

    def _pricing(self, msg: Outbound, now: float, *, first: bool) -> dict[str, Any]:
        category = (msg.template_category or "UTILITY").lower() if msg.template else "service"
        free = msg.window_open and category in {"service", "utility"}
        origin = category
        key = f"{msg.phone_number_id}/{msg.to}/{category}".encode()
        conversation: dict[str, Any] = {
            "id": hashlib.sha256(key).hexdigest()[:32],
            "origin": {"type": origin},
        }
        if first:
            conversation["expiration_timestamp"] = str(int(now + WINDOW))
        return {
            "conversation": conversation,
            "pricing": {
                "billable": not free,
                "pricing_model": "PMP",
                "category": category,
                "type": "free_customer_service" if free else "regular",
            },
        }

    async def _post(
        self,
        number: BusinessNumber,
        kind: str,
        message_id: str | None,
        status: str | None,
        payload: dict[str, Any],
        statuses: tuple[tuple[str, str], ...] = (),
    ) -> Delivery:
        entry = self.log.add(
            number=number,
            kind=kind,
            message_id=message_id,
            status=status,
            payload=payload,
            statuses=statuses,
        )
        try:
            await post_with_retries(self._http(), entry, lambda: self.timing, self._now)
        except asyncio.CancelledError:
            if entry.outcome == "pending":
                entry.outcome = "cancelled"
            raise
        return entry

    # -- phones (control API) ---------------------------------------------------------

    def phone_send(self, number_text: str, doc: object) -> dict[str, Any]:
        """A phone sends a text or a file to a business number: opens the 24-hour window
        and emits the inbound webhook (in the background)."""
        sender = _phone_or_not_found(number_text)
        phone, _ = self._behaviour(sender)
        if not isinstance(doc, Mapping):
            raise WorldError("body: must be a JSON object")
        allowed = {
            "to",
            "type",
            "text",
            "caption",
            "filename",
            "mime_type",
            "content_base64",
            "context",
        }
        unknown = sorted(set(doc) - allowed)
        if unknown:
            raise WorldError(f"{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})")
        if not phone.on_whatsapp:
            raise WorldError(f"phone {sender} is not on WhatsApp and cannot send messages")
        to = doc.get("to")
        business = self._business_by_any_number(to)
        kind = doc.get("type", "text")
        if kind not in {"text", *rules.MEDIA_TYPES}:
            raise WorldError(f"type: must be text or one of {', '.join(rules.MEDIA_TYPES)}")
        now = self._now()
        item = Inbound(
            id=_wamid(sender),
            phone_number_id=business.phone_number_id,
            sender=sender,
            type=str(kind),
            timestamp=now,
        )
        message: dict[str, Any] = {
            "from": sender,
            "id": item.id,
            "timestamp": str(int(now)),
            "type": kind,
        }
        context = doc.get("context")
        if context is not None:
            if not isinstance(context, Mapping) or not isinstance(context.get("message_id"), str):
                raise WorldError('context: must be {"message_id": "wamid..."}')
            item.context_message_id = str(context["message_id"])
            message["context"] = {
                "from": business.display_phone_number,
                "id": item.context_message_id,
            }
        if kind == "text":
            text = doc.get("text")
            if not isinstance(text, str) or not text:
                raise WorldError("text: a non-empty string is required for a text message")
            item.text = text
            message["text"] = {"body": text}
        else:
            message[str(kind)] = self._inbound_media(business, str(kind), doc, item)

        self._remember_inbound(item)
        self._last_inbound[(business.phone_number_id, sender)] = now
        self._throughput_window(business.phone_number_id, now).append(now)
        payload = envelope(
            business,
            {
                "contacts": [{"profile": {"name": phone.name}, "wa_id": sender}],
                "messages": [message],
            },
        )
        entry = self.log.add(
            number=business, kind="message", message_id=item.id, status=None, payload=payload
        )
        item.webhook_id = entry.id
        self._spawn(self._deliver(entry))
        return {"message": item.to_json(), "webhook_id": entry.id}

    def _inbound_media(
        self, business: BusinessNumber, kind: str, doc: Mapping[str, Any], item: Inbound
    ) -> dict[str, Any]:
        mime = doc.get("mime_type")
        if not isinstance(mime, str) or mime.count("/") != 1:
            raise WorldError("mime_type: a MIME type is required for a file")
        encoded = doc.get("content_base64")
        if not isinstance(encoded, str):
            raise WorldError("content_base64: the file's bytes, base64-encoded, are required")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise WorldError("content_base64: not valid base64") from None
        if not data or len(data) > rules.UPLOAD_MAX:
            raise WorldError(f"content_base64: the file must hold 1 to {rules.UPLOAD_MAX} bytes")
        filename = doc.get("filename")
        caption = doc.get("caption")
        if filename is not None and (not isinstance(filename, str) or not filename):
            raise WorldError("filename: must be a non-empty string")
        if caption is not None and not isinstance(caption, str):
            raise WorldError("caption: must be a string")
        media = self._store_media(
            owner=business.phone_number_id,
            mime_type=rules.bare_mime(mime),
            data=data,
            filename=filename,
            lifetime=INBOUND_LIFETIME,
            origin="inbound",
        )
        item.mime_type, item.media_id = media.mime_type, media.id
        item.filename, item.caption = filename, caption
        body: dict[str, Any] = {}
        if caption is not None and kind in {"document", "image", "video"}:
            body["caption"] = caption
        if filename is not None and kind == "document":
            body["filename"] = filename
        body.update({"mime_type": media.mime_type, "sha256": b64_sha256(data), "id": media.id})
        if kind == "audio":
            body["voice"] = media.mime_type == "audio/ogg"
        return body

    async def _deliver(self, entry: Delivery) -> None:
        try:
            await post_with_retries(self._http(), entry, lambda: self.timing, self._now)
        except asyncio.CancelledError:
            if entry.outcome == "pending":
                entry.outcome = "cancelled"
            raise

    def _business_by_any_number(self, value: object) -> BusinessNumber:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise WorldError("to: the business number's phone_number_id or display number")
        text = str(value)
        number = self._world.number(text)
        if number is None:
            digits = normalise_number(text)
            number = next(
                (n for n in self._world.numbers if n.display_phone_number == digits), None
            )
        if number is None:
            raise NotFound(f"to: no business number {text!r} in the world")
        return number

    def _remember_inbound(self, item: Inbound) -> None:
        self._inbound[item.id] = item
        self._outboxes.setdefault(item.sender, deque(maxlen=MESSAGES_KEPT)).append(item.id)
        while len(self._inbound) > MESSAGES_KEPT:
            self._inbound.popitem(last=False)

    def inbox(self, number_text: str) -> list[Outbound]:
        """What the business sent this phone, oldest first (failed ones included)."""
        phone = _phone_or_not_found(number_text)
        ids = self._inboxes.get(phone, ())
        return [self._outbound[i] for i in ids if i in self._outbound]

    def inbox_file(self, number_text: str, message_id: str) -> Outbound:
        for msg in self.inbox(number_text):
            if msg.id == message_id:
                if msg.content is None:
                    raise NotFound(f"message {message_id} carried no file the phone received")
                return msg
        raise NotFound(f"no message {message_id} in the inbox of {number_text}")

    def sent_by(self, number_text: str) -> list[Inbound]:
        phone = _phone_or_not_found(number_text)
        ids = self._outboxes.get(phone, ())
        return [self._inbound[i] for i in ids if i in self._inbound]

    def phone_view(self, number_text: str) -> dict[str, Any]:
        number = _phone_or_not_found(number_text)
        phone, source = self._behaviour(number)
        windows = {}
        for business in self._world.numbers:
            key = (business.phone_number_id, number)
            last = self._last_inbound.get(key, self._window_epoch.get(number))
            is_open = self._window_open(business.phone_number_id, phone)
            windows[business.phone_number_id] = {
                "open": is_open,
                "closes_at": last + WINDOW if is_open and last is not None else None,
            }
        return {
            **phone_document(phone),
            "source": source,
            "windows": windows,
            "throttled_sends_left": max(0, phone.throttle_first - self._throttled.get(number, 0)),
        }

    # -- world changes (control API) --------------------------------------------------

    def world_json(self) -> dict[str, Any]:
        doc = world_document(self._world, with_control_token=False)
        doc["control_token_set"] = self._world.control_token is not None
        doc["magic_phones"] = [phone_document(p) for p in MAGIC_PHONES.values()]
        return doc

    def put_number(self, phone_number_id: str, doc: object) -> tuple[BusinessNumber, bool]:
        number = parse_number(_with_key(doc, "phone_number_id", phone_number_id), "number")
        numbers, created = _upsert(
            self._world.numbers, number, lambda n: n.phone_number_id == number.phone_number_id
        )
        self._set_world(replace(self._world, numbers=numbers))
        return number, created

    async def verify_webhook(self, number: BusinessNumber) -> dict[str, Any] | None:
        if number.webhook_url is None:
            return None
        return await verify_webhook(
            self._http(), number.webhook_url, number.verify_token, self.timing.webhook_timeout
        )

    def remove_number(self, phone_number_id: str) -> None:
        if self._world.number(phone_number_id) is None:
            raise NotFound(f"no business number {phone_number_id!r}")
        numbers = tuple(n for n in self._world.numbers if n.phone_number_id != phone_number_id)
        self._set_world(replace(self._world, numbers=numbers))

    def put_phone(self, number_text: str, doc: object) -> tuple[Phone, bool]:
        digits = _phone_or_not_found(number_text)
        phone = parse_phone(_with_key(doc, "number", digits, normalise=True), "phone")
        phones, created = _upsert(self._world.phones, phone, lambda p: p.number == phone.number)
        self._set_world(replace(self._world, phones=phones))
        if phone.window_open:
            self._window_epoch[phone.number] = self._now()
        else:
            self._window_epoch.pop(phone.number, None)
        self._throttled.pop(phone.number, None)
        return phone, created

    def remove_phone(self, number_text: str) -> None:
        digits = _phone_or_not_found(number_text)
        if self._world.phone(digits) is None:
            raise NotFound(f"no declared phone {number_text!r}")
        self._set_world(
            replace(self._world, phones=tuple(p for p in self._world.phones if p.number != digits))
        )
        self._window_epoch.pop(digits, None)

    def put_template(self, name: str, language: str, doc: object) -> tuple[Template, bool]:
        doc = _with_key(_with_key(doc, "name", name), "language", language)
        template = parse_template(doc, "template")
        templates, created = _upsert(
            self._world.templates,
            template,
            lambda t: (t.name, t.language) == (template.name, template.language),
        )
        self._set_world(replace(self._world, templates=templates))
        return template, created

    def remove_template(self, name: str, language: str) -> None:
        if self._world.template(name, language) is None:
            raise NotFound(f"no template {name!r} in {language!r}")
        templates = tuple(
            t for t in self._world.templates if (t.name, t.language) != (name, language)
        )
        self._set_world(replace(self._world, templates=templates))

    def settings_json(self) -> dict[str, Any]:
        return {**settings_document(self.settings), "timing": timing_document(self.timing)}

    def update_settings(self, doc: object) -> dict[str, Any]:
        """Change some settings (pair rate limit, timing, ...); fields left out stay."""
        if not isinstance(doc, Mapping):
            raise WorldError("settings: must be a JSON object")
        rest = {k: v for k, v in doc.items() if k != "timing"}
        settings = parse_settings(rest, "settings", base=self.settings)
        timing = self.timing
        if "timing" in doc:
            timing = parse_timing(doc["timing"], "timing", base=self.timing)
        self._set_world(replace(self._world, settings=settings, timing=timing))
        if not settings.pair_rate_limit:
            self._pairs.clear()
        return self.settings_json()

    def _set_world(self, world: World) -> None:
        check_unique(world)
        self._world = world

    def deliveries(self, filters: Mapping[str, str]) -> list[Delivery]:
        fields = ("phone_number_id", "message_id", "kind", "status", "outcome")
        unknown = sorted(set(filters) - set(fields))
        if unknown:
            raise WorldError(f"{unknown[0]}: unknown filter (allowed: {', '.join(fields)})")
        return [entry for entry in self.log if entry.matches(filters)]


def _expired_url() -> GraphError:
    return GraphError(
        code=100,
        status=404,
        message="(#100) The media URL has expired or does not exist",
        details="Media URLs are valid for 5 minutes; retrieve a new one with GET /{media-id}.",
    )


def _wamid(recipient: str) -> str:
    raw = b"\x15\x02\x00\x11\x18\x12" + recipient.encode() + secrets.token_bytes(12)
    return "wamid." + base64.urlsafe_b64encode(raw).decode()


def _phone_or_not_found(text: str) -> str:
    digits = normalise_number(text)
    if digits is None:
        raise WorldError(f"number: {text!r} is not an international phone number")
    return digits


def _with_key(doc: object, key: str, value: str, *, normalise: bool = False) -> object:
    """The document with `key` taken from the URL; a different value in the body is an error."""
    if not isinstance(doc, Mapping):
        return doc  # parse_* names the problem
    if key in doc:
        given = normalise_number(doc[key]) if normalise else str(doc[key])
        if given != value:
            raise WorldError(f"{key}: {doc[key]!r} differs from the URL's {value!r}")
    return {**doc, key: value}


def _upsert(items: Iterable[T], new: T, same: Callable[[T], bool]) -> tuple[tuple[T, ...], bool]:
    out: list[T] = []
    created = True
    for item in items:
        if same(item):
            out.append(new)
            created = False
        else:
            out.append(item)
    if created:
        out.append(new)
    return tuple(out), created
