"""The client: httpx underneath, files streamed both ways, problems as exceptions."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import httpx

from wafile import __version__
from wafile.channels.pooled import PooledClient
from wafile.core.content_disposition import attachment

__all__ = ["CHUNK_SIZE", "ApiError", "WafileClient"]

CHUNK_SIZE = 1024 * 1024
Progress = Callable[[int], None]  # told how many more bytes went by


class ApiError(Exception):
    """The server answered with an error; `problem` is its problem+json document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(f"{detail} (HTTP {status}, {problem.get('code', 'error')})")


class WafileClient(PooledClient):
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"wafile/{__version__}"},
            # Big files: no limit on the whole exchange, only on each read and write.
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    async def upload(
        self,
        path: Path,
        *,
        mime_type: str | None = None,
        filename: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload a file as a raw body, streamed from disk; the media object."""
        size = (await asyncio.to_thread(path.stat)).st_size
        claimed = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {
            "Content-Type": claimed,
            "Content-Disposition": attachment(filename or path.name),
            "Content-Length": str(size),  # so the server can refuse an oversize file at once
        }
        response = await self._http.post(
            "/v1/media", content=_read(path, progress), headers=headers
        )
        return _json(response)

    async def get_media(self, media_id: str) -> dict[str, Any]:
        return _json(await self._http.get(f"/v1/media/{_segment(media_id)}"))

    async def list_media(self, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return _json(await self._http.get("/v1/media", params=params))

    async def delete_media(self, media_id: str) -> None:
        response = await self._http.delete(f"/v1/media/{_segment(media_id)}")
        if response.status_code != 204:
            _raise(response)

    async def send_message(
        self, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """`POST /v1/messages`: the accepted message (202)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return _json(await self._http.post("/v1/messages", json=body, headers=headers))

    async def get_message(self, message_id: str) -> dict[str, Any]:
        return _json(await self._http.get(f"/v1/messages/{_segment(message_id)}"))

    async def download(
        self,
        media_id: str,
        out: BinaryIO,
        *,
        started: Callable[[int], None] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, str]:
        """Write the file's bytes to `out`; the response headers (filename, type, ETag).

        `started` is told the file's size before the first byte.
        """
        url = f"/v1/media/{_segment(media_id)}/content"
        async with self._http.stream("GET", url) as response:
            if response.status_code != 200:
                await response.aread()
                _raise(response)
            if started is not None:
                started(int(response.headers.get("content-length", 0)))
            async for chunk in response.aiter_bytes(CHUNK_SIZE):
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))
            return dict(response.headers)


async def _read(path: Path, progress: Progress | None) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK_SIZE):
            yield chunk
            if progress is not None:
                progress(len(chunk))


def _segment(value: str) -> str:
    # Ids are URL-safe already; refuse anything that would change the path.
    if not value or any(c in value for c in "/?#%") or value in {".", ".."}:
        raise ValueError(f"not a media id: {value!r}")
    return value


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.is_success:
        body = response.json()
        if isinstance(body, dict):
            return body
    _raise(response)


def _raise(response: httpx.Response) -> NoReturn:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": response.text[:200] or response.reason_phrase}
    raise ApiError(response.status_code, problem)
