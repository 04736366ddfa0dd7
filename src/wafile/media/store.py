"""The blob store: wafile's own bytes, by key, streamed in and out.

`BlobStore` is the seam; `open_store(url)` builds the one implementation, over obstore,
for every backend: `file:///abs/path` (LocalStore), `memory://` (MemoryStore, unit
tests) and `s3://bucket/prefix` (any S3-compatible endpoint). Nothing outside
`wafile.media` imports obstore, and no obstore exception leaves this module:

    LookupError
    └── BlobNotFound        the key holds no blob
    RuntimeError
    └── BlobStoreError      the backend failed (I/O, network, credentials, bucket)
    ValueError              a malformed key, range or store URL (a bug or bad config)

Contracts:

- Keys are wafile's own (`blobs/ab/cdef...`), never names a user chose: `/`-separated
  segments of `[A-Za-z0-9_-]` plus inner dots, so no `..`, no leading `/`, no empty
  segment, and no `#` (LocalStore stages uploads as `<key>#<n>`).
- `put` streams: every put is a multipart upload of `PART_SIZE` parts with at most
  `PUT_CONCURRENCY` in flight, so memory is bounded by about
  `PART_SIZE * (PUT_CONCURRENCY + 1)` whatever the blob's size. It is all or nothing:
  LocalStore writes a staging file and renames it into place, S3 completes or aborts
  the multipart upload, so a failed put leaves the previous blob (or none) visible.
  An exception raised by the caller's own stream (say, a size limit) comes out
  unchanged.
- `move` renames on LocalStore (atomic) and copies then deletes on S3 and memory, so a
  crash in between can leave the source behind, never lose the destination.
- `get` yields `blob[start:end]`, like slicing: `end` is exclusive and clamped to the
  size, a `start` past the end yields nothing. It is awaited first, so a missing blob
  raises `BlobNotFound` before the caller starts a response, then iterated.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import obstore
from obstore.store import LocalStore, MemoryStore, S3Store

from wafile.core.hosts import is_loopback

if TYPE_CHECKING:
    from obstore import BytesStream, GetOptions
    from obstore.store import ClientConfig, ObjectStore, RetryConfig, S3Config

__all__ = [
    "PART_SIZE",
    "PUT_CONCURRENCY",
    "READ_CHUNK_SIZE",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "S3Options",
    "open_store",
]

# S3 refuses parts under 5 MiB (but the last); 5 MiB parts still allow 50 GB blobs.
PART_SIZE = 5 * 1024 * 1024
# Parts uploaded at once per put; with PART_SIZE this caps a put near 25 MiB of buffers.
PUT_CONCURRENCY = 4
# Chunks `get` yields (the last may be shorter); small enough to keep reads smooth.
READ_CHUNK_SIZE = 1024 * 1024

# obstore's default is 30 s for a whole request, body included: too short to stream a
# large blob to a slow reader. Stalls are caught by the read timeout instead.
_REQUEST_TIMEOUT = timedelta(minutes=30)
_READ_TIMEOUT = timedelta(seconds=60)
_CONNECT_TIMEOUT = timedelta(seconds=5)
# obstore's default retries for up to 3 minutes; a readiness probe should not hang so long.
_RETRY: RetryConfig = {"max_retries": 3, "retry_timeout": timedelta(seconds=30)}

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
_STAGING = re.compile(r"#\d+$")


class BlobNotFound(LookupError):
    """No blob is stored under this key."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no blob at {key!r}")


class BlobStoreError(RuntimeError):
    """The blob store's backend failed; the cause is chained."""


@dataclass(frozen=True, kw_only=True)
class S3Options:
    """How to reach an S3-compatible store; unset fields fall back to obstore's AWS_* env.

    Plain http is allowed to a loopback endpoint (tests, a sidecar MinIO); anywhere else
    it needs `allow_http=True`, so a typo cannot send credentials in clear text.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    allow_http: bool = False


@runtime_checkable
class BlobStore(Protocol):
    """Blobs by key; every method validates the key first (ValueError)."""

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Store the stream under `key`, replacing any blob there, all or nothing."""
        ...

    async def size(self, key: str) -> int | None:
        """The blob's size in bytes, or None when there is none."""
        ...

    async def get(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Open `blob[start:end]` for streaming; raises BlobNotFound before any byte."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Give the blob at `src` the key `dst` (replacing any blob there).

        For content addressing: put under a temporary key, move once the hash is known.
        Raises BlobNotFound when `src` holds no blob.
        """
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def older_than(self, prefix: str, before: datetime) -> list[str]:
        """Keys under `prefix/` last written before `before` (for sweeping leftovers)."""
        ...

    async def purge_staging(self, before: datetime) -> int:
        """Remove staging debris of puts a crash interrupted, older than `before`.

        LocalStore writes `<key>#<n>` files that obstore neither lists nor deletes;
        S3's counterpart, incomplete multipart uploads, is the bucket's job (a
        lifecycle rule), so this removes nothing there. Returns the number removed.
        """
        ...

    async def ping(self) -> None:
        """Write and delete a marker; raises BlobStoreError when the store is unusable."""
        ...


def open_store(url: str, *, s3: S3Options | None = None) -> BlobStore:
    """Build the store for `url`; `s3` only applies to `s3://` URLs.

    Raises ValueError for an unsupported or malformed URL or S3 options.
    """
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"media store URL takes no query or fragment: {url!r}")
    if parts.scheme == "memory":
        if parts.netloc or parts.path:
            raise ValueError(f"the memory store URL is just 'memory://', not {url!r}")
        return _ObstoreBlobStore(MemoryStore(), "memory://")
    if parts.scheme == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError(f"a file store URL needs an absolute path, file:///...: {url!r}")
        try:
            local = LocalStore(path, mkdir=True)
        except (obstore.exceptions.BaseError, OSError) as exc:
            raise BlobStoreError(f"cannot open the media folder {path!r}: {exc}") from exc
        return _ObstoreBlobStore(local, f"file://{path}", root=Path(path))
    if parts.scheme == "s3":
        return _open_s3(parts.netloc, parts.path.strip("/"), s3 or S3Options())
    raise ValueError(f"unsupported media store URL {url!r} (file://, s3:// or memory://)")


def _open_s3(bucket: str, prefix: str, options: S3Options) -> BlobStore:
    if not bucket:
        raise ValueError("an S3 store URL needs a bucket: s3://bucket/prefix")
    if prefix:
        _check_key(prefix)
    if (options.access_key_id is None) != (options.secret_access_key is None):
        raise ValueError("give both the S3 access key id and secret access key, or neither")
    config: S3Config = {}
    client: ClientConfig = {
        "timeout": _REQUEST_TIMEOUT,
        "read_timeout": _READ_TIMEOUT,
        "connect_timeout": _CONNECT_TIMEOUT,
    }
    if options.endpoint_url is not None:
        endpoint = urlsplit(options.endpoint_url)
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise ValueError(f"the S3 endpoint must be an http(s) URL: {options.endpoint_url!r}")
        if endpoint.scheme == "http":
            if not (options.allow_http or is_loopback(endpoint.hostname)):
                raise ValueError(
                    "plain http to a non-loopback S3 endpoint needs allow_http=True: "
                    f"{options.endpoint_url!r}"
                )
            client["allow_http"] = True
        config["endpoint"] = options.endpoint_url
    if options.region is not None:
        config["region"] = options.region
    if options.access_key_id is not None and options.secret_access_key is not None:
        config["access_key_id"] = options.access_key_id
        config["secret_access_key"] = options.secret_access_key
    try:
        store = S3Store(
            bucket, prefix=prefix or None, config=config, client_options=client, retry_config=_RETRY
        )
    except obstore.exceptions.BaseError as exc:
        raise ValueError(f"invalid S3 media store settings: {exc}") from exc
    return _ObstoreBlobStore(store, f"s3://{bucket}/{prefix}")


def _check_key(key: str) -> None:
    if not key or not all(_SEGMENT.fullmatch(segment) for segment in key.split("/")):
        raise ValueError(f"invalid blob key {key!r}")


def _translate(exc: Exception, key: str) -> Exception:
    """The wafile error for an obstore failure (obstore raises FileNotFoundError for 404)."""
    if isinstance(exc, FileNotFoundError):
        return BlobNotFound(key)
    return BlobStoreError(f"blob store failed on {key!r}: {exc}")


class _ObstoreBlobStore:
    """`BlobStore` over any obstore store."""

    def __init__(self, store: ObjectStore, description: str, root: Path | None = None) -> None:
        self._store = store
        self._description = description
        self._root = root  # the folder of a LocalStore

    def __repr__(self) -> str:
        return f"<BlobStore {self._description}>"

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        _check_key(key)
        source = _Source(chunks)
        try:
            # An async iterable of unknown length always goes multipart: obstore never
            # buffers the whole stream (use_multipart=False would).
            await obstore.put_async(
                self._store,
                key,
                source,
                use_multipart=True,
                chunk_size=PART_SIZE,
                max_concurrency=PUT_CONCURRENCY,
            )
        except Exception as exc:
            # obstore aborts the upload, then re-raises the stream's own exception as is.
            if exc is source.error:
                raise
            # Not BlobNotFound even for a 404: on a put that means a missing bucket.
            raise BlobStoreError(f"blob store failed to put {key!r}: {exc}") from exc

    async def size(self, key: str) -> int | None:
        _check_key(key)
        try:
            meta = await obstore.head_async(self._store, key)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise _translate(exc, key) from exc
        return meta["size"]

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    async def get(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        _check_key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range [{start}, {end})")
        if end == start:
            if not await self.exists(key):
                raise BlobNotFound(key)
            return _empty()
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except Exception as exc:
            if "range" in options and not isinstance(exc, FileNotFoundError):
                # Backends refuse a range that starts at or past the end; slicing does not.
                size = await self.size(key)
                if size is None:
                    raise BlobNotFound(key) from exc
                if start >= size:
                    return _empty()
            raise _translate(exc, key) from exc
        return _Chunks(result.stream(min_chunk_size=READ_CHUNK_SIZE), key)

    async def move(self, src: str, dst: str) -> None:
        _check_key(src)
        _check_key(dst)
        try:
            # A rename on LocalStore; copy then delete on S3 and memory.
            await obstore.rename_async(self._store, src, dst, overwrite=True)
        except Exception as exc:
            raise _translate(exc, src) from exc

    async def delete(self, key: str) -> None:
        _check_key(key)
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            pass  # LocalStore reports a missing file; S3 and memory do not.
        except Exception as exc:
            raise _translate(exc, key) from exc

    async def older_than(self, prefix: str, before: datetime) -> list[str]:
        _check_key(prefix)
        keys: list[str] = []
        try:
            async for batch in obstore.list(self._store, prefix + "/", chunk_size=1000):
                keys.extend(m["path"] for m in batch if m["last_modified"] < before)
        except Exception as exc:
            raise _translate(exc, prefix) from exc
        return keys

    async def purge_staging(self, before: datetime) -> int:
        if self._root is None:
            return 0
        return await asyncio.to_thread(_purge_staging_files, self._root, before.timestamp())

    async def ping(self) -> None:
        # A unique key, so concurrent probes (several processes) never delete each other's.
        key = f"_ping/{secrets.token_hex(8)}"
        try:
            await obstore.put_async(self._store, key, b"ok", use_multipart=False)
            await obstore.delete_async(self._store, key)
        except Exception as exc:
            raise BlobStoreError(f"blob store {self._description} is not usable: {exc}") from exc


class _Source:
    """The caller's stream, remembering any exception it raised itself."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = aiter(chunks)
        self.error: BaseException | None = None

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise


class _Chunks:
    """obstore's byte stream with its errors translated."""

    def __init__(self, stream: BytesStream, key: str) -> None:
        self._stream = stream
        self._key = key

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            raise _translate(exc, self._key) from exc


def _purge_staging_files(root: Path, before: float) -> int:
    removed = 0
    for path in root.rglob("*#*"):
        try:
            if _STAGING.search(path.name) and path.stat().st_mtime < before:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            pass  # finished (renamed into place) or removed meanwhile
    return removed


async def _empty() -> AsyncIterator[bytes]:
    return
    yield  # pragma: no cover - makes this an async generator
