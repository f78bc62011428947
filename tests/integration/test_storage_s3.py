"""S3Storage against moto's S3 server on 127.0.0.1 (a real HTTP server, no patching)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING

import boto3
import httpx
import pytest
from aiohttp import web
from moto.server import ThreadedMotoServer

from storage import BackendError, ObjectNotFound, S3Storage, TooLarge, new_key, relay
from storage.s3 import MIN_PART_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CHUNK = 64 << 10


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    return boto3.session.Session()


@pytest.fixture(scope="module")
def admin(endpoint: str, session: boto3.session.Session) -> S3Client:
    """A plain boto3 client to look behind S3Storage's back."""
    return session.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def bucket(admin: S3Client) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
async def storage(endpoint: str, bucket: str,
                  session: boto3.session.Session) -> AsyncIterator[S3Storage]:
    backend = S3Storage(bucket=bucket, endpoint_url=endpoint, part_size=MIN_PART_SIZE,
                        session=session,
                        access_key_id="testing", secret_access_key="testing")
    yield backend
    await backend.aclose()


def pattern(size: int) -> bytes:
    seed = hashlib.sha256(str(size).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def stream(data: bytes, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start:start + chunk]


def no_pending_uploads(admin: S3Client, bucket: str) -> bool:
    return not admin.list_multipart_uploads(Bucket=bucket).get("Uploads")


async def test_multipart_upload_of_a_12_mib_stream(storage: S3Storage, admin: S3Client,
                                                   bucket: str) -> None:
    data = pattern(12 << 20) + b"odd tail"
    key = new_key("videos", ".mp4")
    stored = await storage.put(key, stream(data), content_type="video/mp4")
    assert stored.size == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    head = admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "video/mp4"
    assert head["ETag"].strip('"').endswith("-3")  # 5 MiB + 5 MiB + the rest
    async with aclosing(storage.get(key)) as body:
        digest = hashlib.sha256()
        async for chunk in body:
            digest.update(chunk)
    assert digest.hexdigest() == stored.sha256
    assert no_pending_uploads(admin, bucket)


async def test_small_object_is_one_put(storage: S3Storage, admin: S3Client, bucket: str) -> None:
    key = new_key("images", ".png")
    stored = await storage.put(key, stream(b"\x89PNG tiny"), content_type="image/png")
    assert stored.size == 9
    head = admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "image/png"
    assert "-" not in head["ETag"]


async def test_presigned_url_downloads(storage: S3Storage) -> None:
    data = pattern(100_000)
    key = new_key("videos", ".mp4")
    await storage.put(key, stream(data), content_type="video/mp4")
    link = await storage.url(key, ttl=300)
    assert "X-Amz-Signature=" in link
    assert "X-Amz-Expires=300" in link
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(link)
    assert response.status_code == 200
    assert response.content == data
    with pytest.raises(ValueError, match="ttl"):
        await storage.url(key, ttl=8 * 24 * 3600)


async def test_public_base_url_links(endpoint: str, bucket: str,
                                    session: boto3.session.Session) -> None:
    backend = S3Storage(bucket=bucket, endpoint_url=endpoint, session=session,
                        public_base_url="https://cdn.example/",
                        access_key_id="testing", secret_access_key="testing")
    assert await backend.url("videos/a.mp4", ttl=60) == "https://cdn.example/videos/a.mp4"
    await backend.aclose()


async def test_exists_and_delete(storage: S3Storage) -> None:
    key = new_key("videos", ".mp4")
    assert not await storage.exists(key)
    await storage.put(key, stream(b"abc"), content_type="video/mp4")
    assert await storage.exists(key)
    await storage.delete(key)
    assert not await storage.exists(key)
    await storage.delete(key)  # idempotent
    with pytest.raises(ObjectNotFound):
        async with aclosing(storage.get(key)) as body:
            await anext(body)


async def test_failure_mid_stream_aborts_the_upload(storage: S3Storage, admin: S3Client,
                                                    bucket: str) -> None:
    async def broken() -> AsyncIterator[bytes]:
        async for chunk in stream(pattern(11 << 20)):  # two parts uploaded, then it breaks
            yield chunk
        raise ConnectionResetError("source went away")

    key = new_key("videos", ".mp4")
    with pytest.raises(ConnectionResetError):
        await storage.put(key, broken(), content_type="video/mp4")
    assert not await storage.exists(key)
    assert no_pending_uploads(admin, bucket)


async def test_cancellation_mid_stream_aborts_the_upload(storage: S3Storage, admin: S3Client,
                                                         bucket: str) -> None:
    sent = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        for i in range(10_000):
            yield b"x" * CHUNK
            if i * CHUNK > MIN_PART_SIZE + CHUNK:
                sent.set()
                await asyncio.sleep(0.01)

    key = new_key("videos", ".mp4")
    task = asyncio.create_task(storage.put(key, endless(), content_type="video/mp4"))
    await asyncio.wait_for(sent.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await storage.exists(key)
    assert no_pending_uploads(admin, bucket)


async def test_store_errors_are_backend_errors(endpoint: str,
                                              session: boto3.session.Session) -> None:
    backend = S3Storage(bucket="no-such-bucket", endpoint_url=endpoint, session=session,
                        access_key_id="testing", secret_access_key="testing")
    with pytest.raises(BackendError, match="NoSuchBucket"):
        await backend.put(new_key("videos", ".mp4"), stream(b"x"), content_type="video/mp4")
    await backend.aclose()


async def test_relay_over_the_limit_leaves_no_upload(storage: S3Storage, admin: S3Client,
                                                     bucket: str) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        await response.prepare(request)
        for _ in range(7 << 4):  # 7 MiB in 64 KiB chunks, no Content-Length
            await response.write(b"v" * CHUNK)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/video", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    key = new_key("videos", ".mp4")
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            with pytest.raises(TooLarge):
                await relay(client, f"http://127.0.0.1:{port}/video", storage, key,
                            max_bytes=6 << 20, timeout=10, allow_hosts=frozenset({f"http://127.0.0.1:{port}"}))
    finally:
        await runner.cleanup()
    assert not await storage.exists(key)
    assert no_pending_uploads(admin, bucket)
