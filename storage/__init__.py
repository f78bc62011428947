"""Media storage: local files (default) or any S3-compatible store, and safe relaying of
provider results into it.

    storage = build_storage(config.storage, public_url=config.http.public_url, secrets=secrets)
    key = new_key("videos", ".mp4")
    stored = await relay(http, result_url, storage, key, max_bytes=..., timeout=...)
    link = await storage.url(stored.key, ttl=config.storage.link_ttl_seconds)

Secrets (environment only): `MEDIA_LINK_SECRET` signs local media links (16+ bytes);
`S3_ACCESS_KEY_ID` and `S3_SECRET_ACCESS_KEY` for the s3 backend. Errors are drawn in
`storage._exceptions`.

`S3Storage` (boto3, ~0.3 s and 30 MB to import) is loaded only when the s3 backend is built or
the name is first used (PEP 562 `__getattr__`), so a service on local storage never loads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from core.config import StorageConfig
from storage._base import Storage, StoredObject, new_key, validate_key
from storage._exceptions import (
    BackendError,
    DownloadFailed,
    DownloadTimeout,
    InvalidKey,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
    TooLarge,
    UnexpectedContentType,
    UnsafeURL,
)
from storage._urlsafety import is_public_address
from storage.local import LocalStorage
from storage.relay import DEFAULT_CONTENT_TYPES, relay

if TYPE_CHECKING:
    from storage.s3 import S3Storage

__all__ = [
    "DEFAULT_CONTENT_TYPES",
    "BackendError",
    "DownloadFailed",
    "DownloadTimeout",
    "InvalidKey",
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "StoredObject",
    "TooLarge",
    "UnexpectedContentType",
    "UnsafeURL",
    "build_storage",
    "is_public_address",
    "new_key",
    "open_storage",
    "relay",
    "validate_key",
]


def __getattr__(name: str) -> object:
    if name != "S3Storage":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from storage.s3 import S3Storage

    return S3Storage


def _secret(secrets: Mapping[str, str], name: str, purpose: str) -> str:
    value = secrets.get(name, "")
    if not value:
        raise StorageConfigError(f"environment variable {name} is not set ({purpose})")
    return value


def build_storage(
    config: StorageConfig, *, public_url: str, secrets: Mapping[str, str]
) -> LocalStorage | S3Storage:
    """The backend `[storage] backend` names; StorageConfigError names what is missing.

    `public_url` (`[http] public_url`) is where the local backend's `/media/` route is
    reachable; `[storage] public_base_url` applies to s3 only.
    """
    if config.backend == "local":
        secret = _secret(secrets, "MEDIA_LINK_SECRET", 'storage backend "local" signs links')
        try:
            return LocalStorage(config.local_dir, public_base=public_url, link_secret=secret)
        except ValueError as exc:
            raise StorageConfigError(f"environment variable MEDIA_LINK_SECRET: {exc}") from None
    if not config.bucket:
        raise StorageConfigError('storage.bucket: required when storage.backend is "s3"')
    from storage.s3 import S3Storage  # boto3 only for this backend

    return S3Storage(
        bucket=config.bucket,
        endpoint_url=config.s3_endpoint_url or None,
        region=config.region,
        public_base_url=config.public_base_url,
        access_key_id=_secret(secrets, "S3_ACCESS_KEY_ID", 'storage backend "s3"'),
        secret_access_key=_secret(secrets, "S3_SECRET_ACCESS_KEY", 'storage backend "s3"'),
    )


@asynccontextmanager
async def open_storage(
    config: StorageConfig, *, public_url: str, secrets: Mapping[str, str]
) -> AsyncIterator[LocalStorage | S3Storage]:
    """`build_storage` as a resource: the backend is closed on exit."""
    backend = build_storage(config, public_url=public_url, secrets=secrets)
    try:
        yield backend
    finally:
        await backend.aclose()
