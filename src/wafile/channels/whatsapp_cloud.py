"""The WhatsApp Cloud API over HTTP: upload a file, send a message, read Graph errors.

One pooled httpx client per process, with a timeout on every phase. A Graph error
becomes `GraphFailure` with Meta's code, which the caller classifies (never the
message text, which Meta changes). A timeout or a 5xx without a Graph body is a
`GraphFailure` with no code: for a send it is ambiguous (the message may have gone),
and the caller decides.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from wafile import __version__
from wafile.channels.http_pool import polling_transport
from wafile.channels.pooled import PooledClient, ProviderFailure
from wafile.core.senders import WhatsAppSender

__all__ = ["GraphFailure", "WhatsAppCloud"]

# Files up to this size are spooled in memory before the upload, larger ones on disk:
# httpx's multipart encoder needs a file object, and memory must not grow with files.
SPOOL_IN_MEMORY = 1024 * 1024
TIMEOUT = httpx.Timeout(30.0, connect=5.0, write=60.0)
DOWNLOAD_CHUNK = 1024 * 1024


@dataclass(kw_only=True)  # not frozen: Python sets attributes on exceptions it raises
class GraphFailure(ProviderFailure):
    http_status: int | None  # None: no answer at all (timeout, connection refused)
    code: int | None  # Meta's error code; None when the answer was no Graph error
    subcode: int | None = None
    message: str = ""
    details: str | None = None

    def __str__(self) -> str:
        where = f"HTTP {self.http_status}" if self.http_status else "no answer"
        code = f"code {self.code}" if self.code is not None else "no Graph error"
        return f"{where}, {code}: {self.details or self.message}"


class WhatsAppCloud(PooledClient):
    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(
            timeout=TIMEOUT,
            headers={"User-Agent": f"wafile/{__version__}"},
            transport=transport
            or polling_transport(httpx.Limits(max_connections=200, max_keepalive_connections=50)),
        )

    async def upload(
        self,
        sender: WhatsAppSender,
        token: str,
        *,
        chunks: AsyncIterable[bytes],
        filename: str,
        mime_type: str,
    ) -> str:
        """Upload a file to the sender's number; Meta's media id (valid 30 days)."""
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            async for chunk in chunks:
                spool.write(chunk)
            spool.seek(0)
            answer = await self._call(
                "POST",
                _url(sender, f"{sender.phone_number_id}/media"),
                token,
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (filename, spool, mime_type)},
            )
        media_id = answer.get("id")
        if not isinstance(media_id, str):
            raise GraphFailure(http_status=200, code=None, message="upload answer without an id")
        return media_id

    async def download(
        self, sender: WhatsAppSender, token: str, media_id: str
    ) -> AsyncIterator[bytes]:
        """The bytes of a media id (an inbound file): its URL first, then the file.

        Meta's URL lasts 5 minutes and needs the same token; it is fetched right
        before the download, streamed, never buffered whole.
        """
        answer = await self._call("GET", _url(sender, media_id), token)
        url = answer.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise GraphFailure(http_status=200, code=None, message="media answer without a url")
        try:
            async with self._http.stream(
                "GET", url, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                if not resp.is_success:
                    raise GraphFailure(
                        http_status=resp.status_code, code=None, message="media download refused"
                    )
                async for chunk in resp.aiter_bytes(DOWNLOAD_CHUNK):
                    yield chunk
        except httpx.TimeoutException:
            raise GraphFailure(http_status=None, code=None, message="timed out") from None
        except httpx.TransportError as exc:
            raise GraphFailure(http_status=None, code=None, message=f"unreachable: {exc}") from None

    async def send(self, sender: WhatsAppSender, token: str, body: dict[str, Any]) -> str:
        """Send one message; its wamid. 200 means accepted, not delivered."""
        answer = await self._call(
            "POST", _url(sender, f"{sender.phone_number_id}/messages"), token, json=body
        )
        messages = answer.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str):
            raise GraphFailure(http_status=200, code=None, message="send answer without a wamid")
        return wamid

    async def _call(self, method: str, url: str, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = await self._http.request(
                method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        except httpx.TimeoutException:
            raise GraphFailure(http_status=None, code=None, message="timed out") from None
        except httpx.TransportError as exc:
            raise GraphFailure(http_status=None, code=None, message=f"unreachable: {exc}") from None
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if resp.is_success and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if not isinstance(error, dict):
            raise GraphFailure(http_status=resp.status_code, code=None, message=resp.reason_phrase)
        data = error.get("error_data")
        _raise(resp.status_code, error, data if isinstance(data, dict) else {})


def _raise(status: int, error: dict[str, Any], data: dict[str, Any]) -> NoReturn:
    code, subcode = error.get("code"), error.get("error_subcode")
    raise GraphFailure(
        http_status=status,
        code=code if isinstance(code, int) else None,
        subcode=subcode if isinstance(subcode, int) else None,
        message=str(error.get("message") or ""),
        details=str(data["details"]) if data.get("details") is not None else None,
    )


def _url(sender: WhatsAppSender, path: str) -> str:
    return f"{sender.graph_url.rstrip('/')}/{sender.graph_version}/{path}"
