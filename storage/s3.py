"""Media in any S3-compatible store (AWS S3, Cloudflare R2, MinIO, …) through boto3.

boto3 blocks, so every call runs in a worker thread (`run_blocking`). An upload streams: bytes
are collected into parts of `part_size` (at least 5 MiB, the S3 minimum for all but the last
part) and sent with a multipart upload, so at most about one part is held in memory; an object
smaller than one part goes up with a single `PutObject`. If the stream or the store fails, or
the caller is cancelled, the multipart upload is aborted and nothing is left under the key. A
crash of the process itself can still strand an upload: give the bucket a lifecycle rule
"AbortIncompleteMultipartUpload after 1 day".

`url()` is a presigned GET (at most 7 days, the SigV4 limit), or `{public_base_url}/{key}` when
the bucket is served publicly (a CDN or an R2 public domain): those links do not expire.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage._base import Digest, StoredObject, run_blocking, validate_key
from storage._exceptions import BackendError, ObjectNotFound

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MIN_PART_SIZE", "S3Storage"]

log = logging.getLogger(__name__)
T = TypeVar("T")
MIN_PART_SIZE = 5 << 20
MAX_PRESIGN_TTL = 7 * 24 * 3600
_READ_BYTES = 256 << 10
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})


async def _call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    try:
        return await run_blocking(functools.partial(fn, **kwargs))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            raise ObjectNotFound(f"no object {kwargs.get('Key')!r}") from None
        raise BackendError(f"object store: {code or 'error'} in {exc.operation_name}") from exc
    except BotoCoreError as exc:
        raise BackendError(f"object store: {type(exc).__name__}: {exc}") from exc


class S3Storage:
    """`Storage` in an S3-compatible bucket."""

    def __init__(
        self,
        *,
        bucket: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        public_base_url: str = "",
        part_size: int = 8 << 20,
        session: boto3.session.Session | None = None,
    ) -> None:
        """`session` lets several stores share boto3's loaded service models (a new session
        spends a few hundred milliseconds loading them)."""
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self._bucket = bucket
        self._public_base = public_base_url.rstrip("/")
        self._part_size = part_size
        config = Config(
            signature_version="s3v4",
            # Custom endpoints (MinIO, R2, a test server) are reached by path, not by a
            # bucket subdomain that may not resolve.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            retries={"mode": "standard", "max_attempts": 3},
            # boto3 >= 1.36 sends CRC checksums on every upload by default, which several
            # S3-compatible stores reject; send them only where an operation requires one.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client = (session or boto3.session.Session()).client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self._bucket!r})"

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str
    ) -> StoredObject:
        validate_key(key)
        digest = Digest()
        buf = bytearray()
        upload_id: str | None = None
        parts: list[CompletedPartTypeDef] = []
        try:
            async for chunk in chunks:
                buf += chunk
                while len(buf) >= self._part_size:
                    if upload_id is None:
                        created = await _call(
                            self._client.create_multipart_upload,
                            Bucket=self._bucket, Key=key, ContentType=content_type,
                        )
                        upload_id = created["UploadId"]
                    with memoryview(buf) as view:
                        part = bytes(view[: self._part_size])
                    del buf[: self._part_size]
                    parts.append(await self._upload_part(key, upload_id, len(parts) + 1, part,
                                                         digest))
            if upload_id is None:
                body = bytes(buf)
                digest.update(body)
                await _call(self._client.put_object, Bucket=self._bucket, Key=key, Body=body,
                            ContentType=content_type)
                return digest.record(key, content_type)
            if buf:
                parts.append(await self._upload_part(key, upload_id, len(parts) + 1, bytes(buf),
                                                     digest))
            await _call(
                self._client.complete_multipart_upload, Bucket=self._bucket, Key=key,
                UploadId=upload_id, MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                await self._abort(key, upload_id)
            raise
        return digest.record(key, content_type)

    async def _upload_part(
        self, key: str, upload_id: str, number: int, data: bytes, digest: Digest
    ) -> CompletedPartTypeDef:
        def send() -> str:
            digest.update(data)  # in the worker thread: hashlib releases the GIL
            response = self._client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
            )
            return response["ETag"]

        return {"ETag": await _call(send), "PartNumber": number}

    async def _abort(self, key: str, upload_id: str) -> None:
        try:
            await _call(self._client.abort_multipart_upload, Bucket=self._bucket, Key=key,
                        UploadId=upload_id)
        except Exception:
            # The original failure is what the caller must see; the lifecycle rule (see the
            # module docstring) removes what this left.
            log.warning("could not abort multipart upload %s of %s", upload_id, key,
                        exc_info=True)

    async def get(self, key: str) -> AsyncGenerator[bytes, None]:
        validate_key(key)
        response = await _call(self._client.get_object, Bucket=self._bucket, Key=key)
        body = response["Body"]
        try:
            while chunk := await _call(body.read, amt=_READ_BYTES):
                yield chunk
        finally:
            body.close()

    async def url(self, key: str, *, ttl: int) -> str:
        validate_key(key)
        if self._public_base:
            return f"{self._public_base}/{key}"
        if not 0 < ttl <= MAX_PRESIGN_TTL:
            raise ValueError(f"ttl must be between 1 and {MAX_PRESIGN_TTL} seconds")
        # Signing is local computation with the static credentials: no request is made.
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=ttl
        )

    async def delete(self, key: str) -> None:
        validate_key(key)
        await _call(self._client.delete_object, Bucket=self._bucket, Key=key)

    async def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            await _call(self._client.head_object, Bucket=self._bucket, Key=key)
        except ObjectNotFound:
            return False
        return True

    async def aclose(self) -> None:
        """Closes the client's connection pool."""
        self._client.close()
