"""One contract suite for the blob store, run on a local folder, memory and S3 (moto).

The S3 backend is moto's standalone server in a child process on 127.0.0.1, so its
memory does not count against ours in the RSS tests, and it speaks real HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support import BUCKET, S3_CREDENTIALS
from wafile.media.store import (
    PART_SIZE,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    S3Options,
    open_store,
)

MiB = 1024 * 1024


def s3_options(endpoint: str) -> S3Options:
    return S3Options(endpoint_url=endpoint, **S3_CREDENTIALS)


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    if backend == "local":
        return open_store(f"file://{tmp_path}/media")
    if backend == "memory":
        return open_store("memory://")
    endpoint = request.getfixturevalue("moto_endpoint")
    # A prefix per test: tests share the bucket but never see each other's blobs.
    return open_store(f"s3://{BUCKET}/t-{secrets.token_hex(4)}", s3=s3_options(endpoint))


async def stream(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def random_chunks(count: int, size: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


async def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in await store.get(key, start=start, end=end)])


KEY = "blobs/ab/cdef0123456789"


async def test_round_trip_of_a_multi_chunk_stream(store: BlobStore, backend: str) -> None:
    chunks = random_chunks(20, MiB)
    expected = hashlib.sha256(b"".join(chunks)).hexdigest()

    await store.put(KEY, stream(chunks))

    assert await store.size(KEY) == 20 * MiB
    assert await store.exists(KEY)
    digest = hashlib.sha256()
    received = 0
    async for chunk in await store.get(KEY):
        digest.update(chunk)
        received += 1
    assert digest.hexdigest() == expected
    if backend != "memory":  # MemoryStore hands out its one buffer; the others stream
        assert received > 1


async def test_chunks_of_any_size_including_empty_ones(store: BlobStore) -> None:
    # Odd sizes straddle the multipart part boundary; empty chunks are harmless.
    parts = [b"a", b"", b"b" * (PART_SIZE - 1), b"c" * (PART_SIZE + 7), b"", b"d" * 3]
    await store.put(KEY, stream(parts))
    assert await read(store, KEY) == b"".join(parts)


RANGE_BLOB = random_chunks(1, 2 * MiB + 123, seed=1)[0]
N = len(RANGE_BLOB)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None),  # whole
        (0, N),  # whole, explicit
        (1000, None),  # start only
        (1000, 1010),  # start and end
        (N - 1, None),  # last byte
        (N - 1, N),  # last byte, explicit
        (0, 1),  # first byte
        (MiB - 5, MiB + 5),  # across a read chunk
        (10, N + 100),  # end past the blob: clamped
        (N, None),  # start at the end: nothing
        (N + 100, N + 200),  # start past the end: nothing
        (5, 5),  # empty range
    ],
)
async def test_ranges_slice_like_python(store: BlobStore, start: int, end: int | None) -> None:
    await store.put(KEY, stream([RANGE_BLOB[: MiB + 1], RANGE_BLOB[MiB + 1 :]]))
    assert await read(store, KEY, start, end) == RANGE_BLOB[start:end]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (10, 9)])
async def test_invalid_ranges_are_refused(store: BlobStore, start: int, end: int | None) -> None:
    await store.put(KEY, stream([b"hello"]))
    with pytest.raises(ValueError, match="range"):
        await store.get(KEY, start=start, end=end)


async def test_empty_blob(store: BlobStore) -> None:
    await store.put(KEY, stream([]))
    assert await store.size(KEY) == 0
    assert await store.exists(KEY)
    assert await read(store, KEY) == b""
    assert await read(store, KEY, 0, 10) == b""
    assert await read(store, KEY, 3) == b""


async def test_size_exists_delete(store: BlobStore) -> None:
    other = "blobs/ab/other"
    assert await store.size(KEY) is None
    assert not await store.exists(KEY)
    await store.put(KEY, stream([b"hello"]))
    await store.put(other, stream([b"world!"]))
    assert await store.size(KEY) == 5
    assert await store.exists(KEY)

    await store.delete(KEY)

    assert not await store.exists(KEY)
    assert await store.size(KEY) is None
    assert await read(store, other) == b"world!"
    await store.delete(KEY)  # already gone: fine
    await store.delete("blobs/never/there")


async def test_move(store: BlobStore) -> None:
    tmp, final, taken = "tmp/upload-1", "blobs/cd/moved", "blobs/ab/taken"
    await store.put(tmp, stream([b"payload"]))
    await store.put(taken, stream([b"old"]))

    await store.move(tmp, final)
    await store.put(tmp, stream([b"again"]))
    await store.move(tmp, taken)

    assert not await store.exists(tmp)
    assert await read(store, final) == b"payload"
    assert await read(store, taken) == b"again"
    with pytest.raises(BlobNotFound) as caught:
        await store.move(tmp, "blobs/x/y")
    assert caught.value.key == tmp
    assert not await store.exists("blobs/x/y")


async def test_put_replaces(store: BlobStore) -> None:
    await store.put(KEY, stream([b"first version"]))
    await store.put(KEY, stream([b"second"]))
    assert await read(store, KEY) == b"second"
    assert await store.size(KEY) == 6


@pytest.mark.parametrize(("start", "end"), [(0, None), (2, None), (2, 4), (3, 3)])
async def test_getting_a_missing_blob_raises_before_streaming(
    store: BlobStore, start: int, end: int | None
) -> None:
    with pytest.raises(BlobNotFound) as caught:
        await store.get(KEY, start=start, end=end)
    assert caught.value.key == KEY
    assert isinstance(caught.value, LookupError)


BAD_KEYS = [
    "",
    "/blobs/ab",
    "blobs/ab/",
    "blobs//ab",
    "..",
    "../etc/passwd",
    "blobs/../x",
    "blobs/./x",
    ".hidden",
    "blobs/ab#1",  # LocalStore's staging suffix
    "blobs\\ab",
    "blobs/a b",
    "blobs/é",
    "blobs/ab\n",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put(key, stream([b"x"]))
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.get(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.size(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.exists(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.delete(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.move(key, KEY)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.move(KEY, key)


async def test_dotted_and_nested_keys_are_fine(store: BlobStore) -> None:
    key = "blobs/ab/cd/ef.0123-x_y.bin"
    await store.put(key, stream([b"ok"]))
    assert await read(store, key) == b"ok"


class StreamBroke(Exception):
    """The caller's stream failed (say, an upload over the size limit)."""


async def failing(after: int) -> AsyncIterator[bytes]:
    for chunk in random_chunks(after, MiB, seed=2):
        yield chunk
    raise StreamBroke


async def test_a_failed_put_changes_nothing(store: BlobStore, backend: str, tmp_path: Path) -> None:
    await store.put(KEY, stream([b"old"]))
    # 12 MiB: some parts were already uploaded when the stream breaks.
    with pytest.raises(StreamBroke) as caught:
        await store.put(KEY, failing(12))
    error = caught.value
    with pytest.raises(StreamBroke):
        await store.put("blobs/new/one", failing(12))

    assert isinstance(error, StreamBroke)  # the caller's own exception, untouched
    assert await read(store, KEY) == b"old"
    assert not await store.exists("blobs/new/one")
    if backend == "local":
        # No staging file (`<key>#<n>`) left behind.
        assert sorted(p.name for p in (tmp_path / "media").rglob("*") if p.is_file()) == [
            "cdef0123456789"
        ]


async def test_a_cancelled_put_leaves_no_blob(
    store: BlobStore, backend: str, tmp_path: Path
) -> None:
    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for chunk in random_chunks(7, MiB, seed=3):
            yield chunk
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(store.put(KEY, stalls()))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert not await store.exists(KEY)
    if backend == "local":
        await asyncio.sleep(0.2)  # obstore removes the staging file on a blocking thread
        assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []


async def test_ping(store: BlobStore) -> None:
    await store.ping()
    await store.ping()


# --- S3 specifics ----------------------------------------------------------------------


async def test_s3_missing_bucket_is_a_store_error(moto_endpoint: str) -> None:
    store = open_store("s3://no-such-bucket/p", s3=s3_options(moto_endpoint))
    with pytest.raises(BlobStoreError):
        await store.ping()
    with pytest.raises(BlobStoreError):  # not BlobNotFound: the bucket is missing
        await store.put(KEY, stream([b"x"]))


async def test_s3_unreachable_endpoint_is_a_store_error() -> None:
    with socket_closed_port() as port:
        store = open_store(
            "s3://b/p", s3=S3Options(endpoint_url=f"http://127.0.0.1:{port}", **S3_CREDENTIALS)
        )
        with pytest.raises(BlobStoreError):
            await store.ping()
        with pytest.raises(BlobStoreError):
            await store.size(KEY)


async def test_s3_failed_put_aborts_the_multipart_upload(moto_endpoint: str) -> None:
    prefix = f"t-{secrets.token_hex(4)}"
    store = open_store(f"s3://{BUCKET}/{prefix}", s3=s3_options(moto_endpoint))
    with pytest.raises(StreamBroke):
        await store.put(KEY, failing(12))
    uploads = httpx.get(f"{moto_endpoint}/{BUCKET}?uploads", timeout=10).text
    assert f"{prefix}/{KEY}" not in uploads


async def test_s3_prefix_is_applied(moto_endpoint: str) -> None:
    prefix = f"t-{secrets.token_hex(4)}/media"
    store = open_store(f"s3://{BUCKET}/{prefix}", s3=s3_options(moto_endpoint))
    await store.put(KEY, stream([b"where am I"]))
    raw = httpx.get(f"{moto_endpoint}/{BUCKET}/{prefix}/{KEY}", timeout=10)
    assert raw.status_code == 200 and raw.content == b"where am I"


@contextmanager
def socket_closed_port() -> Iterator[int]:
    """A local port with nothing listening (bound, never listened on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# --- memory stays flat ------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Peak:
    """The highest RSS seen: VmHWM when it can be reset, else samples taken by the caller."""

    def __init__(self) -> None:
        self.hwm = _reset_peak()
        self.base = _status_kib("VmRSS")
        self.highest = self.base

    def sample(self) -> None:
        self.highest = max(self.highest, _status_kib("VmRSS"))

    def growth_mib(self) -> float:
        self.sample()
        if self.hwm:
            self.highest = max(self.highest, _status_kib("VmHWM"))
        return (self.highest - self.base) / 1024


BIG = 200 * MiB


@pytest.mark.parametrize("backend", ["local", "s3"])
async def test_memory_stays_flat_for_a_large_blob(store: BlobStore) -> None:
    pattern = random_chunks(4, MiB, seed=4)
    digest = hashlib.sha256()

    async def lazily(peak: Peak) -> AsyncIterator[bytes]:
        for i in range(BIG // MiB):
            # A fresh object per chunk, as from a socket: obstore holds chunks without
            # copying, so reusing one object would hide any buffering.
            chunk = i.to_bytes(8, "big") + pattern[i % 4][8:]
            digest.update(chunk)
            peak.sample()
            yield chunk

    peak = Peak()
    await store.put(KEY, lazily(peak))
    put_growth = peak.growth_mib()
    assert await store.size(KEY) == BIG

    peak = Peak()
    back = hashlib.sha256()
    async for chunk in await store.get(KEY):
        back.update(chunk)
        peak.sample()
    get_growth = peak.growth_mib()

    assert back.hexdigest() == digest.hexdigest()
    assert put_growth < 100, f"put of {BIG // MiB} MiB grew RSS by {put_growth:.0f} MiB"
    assert get_growth < 100, f"get of {BIG // MiB} MiB grew RSS by {get_growth:.0f} MiB"


# --- building a store -------------------------------------------------------------------


def test_file_url_creates_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    open_store(f"file://{folder}")
    assert folder.is_dir()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "media",
        "/var/media",
        "file://relative/path",
        "file:relative",
        "memory://something",
        "s3://",
        "s3:///prefix",
        "s3://bucket/../x",
        "gs://bucket",
        "http://example.com/bucket",
        "file:///tmp/x?mode=1",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)


@pytest.mark.parametrize(
    "options",
    [
        S3Options(endpoint_url="http://s3.example.com"),  # clear text, not loopback
        S3Options(endpoint_url="ftp://127.0.0.1"),
        S3Options(endpoint_url="https://s3.example.com", access_key_id="only-the-id"),
        S3Options(secret_access_key="only-the-secret"),
    ],
)
def test_bad_s3_options_are_refused(options: S3Options) -> None:
    with pytest.raises(ValueError):
        open_store("s3://bucket/prefix", s3=options)


def test_s3_options_allowed() -> None:
    open_store("s3://bucket", s3=S3Options(endpoint_url="http://minio:9000", allow_http=True))
    open_store("s3://bucket/p", s3=S3Options(endpoint_url="http://localhost:9000"))
    open_store("s3://bucket/p", s3=S3Options(endpoint_url="http://[::1]:9000"))
    open_store("s3://bucket/p", s3=S3Options(endpoint_url="https://s3.example.com", region="x"))


def test_secrets_stay_out_of_reprs() -> None:
    options = S3Options(
        endpoint_url="https://s3.example.com", access_key_id="AKIA", secret_access_key="hunter2"
    )
    store = open_store("s3://bucket/prefix", s3=options)
    assert "hunter2" not in repr(options)
    assert "hunter2" not in repr(store) and "AKIA" not in repr(store)
    assert repr(store) == "<BlobStore s3://bucket/prefix>"


def test_stores_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), BlobStore)
    assert isinstance(open_store(f"file://{tmp_path}"), BlobStore)


async def test_older_than_lists_by_prefix_and_age(store: BlobStore) -> None:
    await store.put("uploads/a", stream([b"a"]))
    await store.put("blobs/ab/c", stream([b"c"]))
    await store.put("uploadsx/not-under-the-prefix", stream([b"x"]))
    now = datetime.now(UTC)
    assert await store.older_than("uploads", now + timedelta(minutes=1)) == ["uploads/a"]
    assert await store.older_than("uploads", now - timedelta(minutes=1)) == []
    assert await store.older_than("blobs", now + timedelta(minutes=1)) == ["blobs/ab/c"]
    assert await store.older_than("nothing", now) == []


async def test_purge_staging_removes_only_old_staging_files(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/media")
    await store.put("uploads/kept", stream([b"k"]))
    folder = tmp_path / "media" / "uploads"
    old, fresh = folder / "up_old#1", folder / "up_new#2"
    old.write_bytes(b"o")
    fresh.write_bytes(b"n")
    hour_ago = datetime.now(UTC).timestamp() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert await store.purge_staging(datetime.now(UTC) - timedelta(minutes=30)) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["kept", "up_new#2"]
    assert await open_store("memory://").purge_staging(datetime.now(UTC)) == 0
