"""Errors raised by `storage`.

    StorageError
    ├── InvalidKey          a key outside `[a-z0-9/._-]`, with `..`, a leading `/`, an empty or
    │                       dot-led segment (also a ValueError: keys are ours, so it is a bug)
    ├── ObjectNotFound      `get()` of a key that is not stored
    ├── BackendError        the disk or the object store failed (wraps OSError, botocore errors)
    ├── StorageConfigError  `build_storage` cannot build the backend (also a ConfigError)
    ├── UnsafeURL           `relay` refused a URL (scheme, credentials, a non-public address)
    │                       before any request to it, at the first hop or at a redirect
    ├── TooLarge            the source declared or sent more than `max_bytes`; nothing stored
    └── DownloadFailed      the source did not deliver: an HTTP error status, a network error,
        │                   too many redirects, a malformed `data:` URL
        ├── DownloadTimeout        the overall `timeout` elapsed
        └── UnexpectedContentType  the media type is not one the caller accepts

Messages never contain a URL's path or query (provider result links often carry a token), only
the scheme and host.
"""

from __future__ import annotations

from core.config import ConfigError

__all__ = [
    "BackendError",
    "DownloadFailed",
    "DownloadTimeout",
    "InvalidKey",
    "ObjectNotFound",
    "StorageConfigError",
    "StorageError",
    "TooLarge",
    "UnexpectedContentType",
    "UnsafeURL",
]


class StorageError(Exception):
    """Base of every error raised by `storage`."""


class InvalidKey(StorageError, ValueError):
    """The key is not one `new_key` could have made safe to use as a path or object name."""


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


class BackendError(StorageError):
    """The disk or the object store failed; the operation left no partial object behind."""


class StorageConfigError(StorageError, ConfigError):
    """The storage configuration or a secret it needs is missing or wrong."""


class UnsafeURL(StorageError):
    """The URL may not be fetched: wrong scheme, credentials in it, or a non-public address."""


class TooLarge(StorageError):
    """The source is larger than the caller's `max_bytes`."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class DownloadFailed(StorageError):
    """The source did not deliver the object."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DownloadTimeout(DownloadFailed):
    """The download did not finish within its overall time limit."""


class UnexpectedContentType(DownloadFailed):
    """The source sent a media type the caller does not accept."""
