"""Copies a provider's result (an https URL or an inline `data:` URL) into storage, safely.

`relay` refuses unsafe URLs before any request (see `storage._urlsafety` for the rules and
how DNS rebinding is prevented), follows at most `max_redirects` redirects and checks every
hop again, streams the body into `Storage.put` without holding it in memory, and enforces both
`max_bytes` (a declared Content-Length over it is refused before reading; a body that grows
past it is cut off) and one overall `timeout`. Backends are all-or-nothing, so a refused or
failed download leaves nothing under the key. Errors: see `storage._exceptions`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import mimetypes
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing

import httpx

from storage._base import Storage, StoredObject, validate_key
from storage._exceptions import (
    DownloadFailed,
    DownloadTimeout,
    StorageError,
    TooLarge,
    UnexpectedContentType,
    UnsafeURL,
)
from storage._urlsafety import (
    Resolver,
    Target,
    allow_list,
    check_url,
    origin,
    system_resolve,
)

__all__ = ["DEFAULT_CONTENT_TYPES", "MAX_REDIRECTS", "relay"]

log = logging.getLogger(__name__)
DEFAULT_CONTENT_TYPES = frozenset(
    {"video/*", "image/*", "application/octet-stream", "binary/octet-stream"}
)
MAX_REDIRECTS = 3
_GENERIC = frozenset({"application/octet-stream", "binary/octet-stream"})
_HEADERS = {"Accept-Encoding": "identity", "User-Agent": "VideoFly-relay/1"}


async def relay(
    client: httpx.AsyncClient,
    url: str,
    storage: Storage,
    key: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 -- one limit over DNS, redirects, body and the store
    allow_hosts: frozenset[str] = frozenset(),
    content_types: frozenset[str] = DEFAULT_CONTENT_TYPES,
    max_redirects: int = MAX_REDIRECTS,
    resolve: Resolver = system_resolve,
) -> StoredObject:
    """Downloads `url` into `storage` under `key` and returns what was stored.

    `allow_hosts` are host names or IP literals (no port), which may resolve to local addresses
    but are still fetched over https only (an internal MinIO behind TLS), or exact origins
    `scheme://host:port`, fetched as they are, plain http included (the demo provider on
    `[http] public_url`); see `storage._urlsafety`. `content_types` lists the accepted media types;
    `type/*` accepts a whole family; a generic `application/octet-stream` answer is stored with
    the type the key's suffix implies. `resolve` is the DNS lookup, replaceable in tests.
    """
    validate_key(key)
    if max_bytes <= 0 or timeout <= 0 or max_redirects < 0:
        raise ValueError("max_bytes and timeout must be positive, max_redirects >= 0")
    try:
        async with asyncio.timeout(timeout):
            if url[:5].lower() == "data:":
                return await _store_data_url(url, storage, key, max_bytes, content_types)
            allowed = allow_list(allow_hosts)
            return await _fetch(client, url, storage, key, max_bytes, allowed, content_types,
                                max_redirects, resolve)
    except TimeoutError:
        raise DownloadTimeout(f"not downloaded within {timeout:g} s") from None


async def _fetch(
    client: httpx.AsyncClient, url: str, storage: Storage, key: str, max_bytes: int,
    allowed: frozenset[str], content_types: frozenset[str], max_redirects: int,
    resolve: Resolver,
) -> StoredObject:
    try:
        current = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeURL("not a valid URL") from None
    for _hop in range(max_redirects + 1):
        target = await check_url(current, allowed, resolve)
        where = origin(current)
        request = request_for(target, client)
        try:
            response = await client.send(request, stream=True, follow_redirects=False,
                                         auth=None)
        except httpx.TimeoutException:
            raise DownloadTimeout(f"{where}: timed out") from None
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"{where}: {type(exc).__name__}") from None
        try:
            if response.is_redirect:
                try:
                    current = current.join(response.headers["location"])
                except httpx.InvalidURL:
                    raise UnsafeURL(f"{where}: redirect to an invalid URL") from None
                continue
            if response.status_code != 200:
                raise DownloadFailed(f"{where}: HTTP {response.status_code}",
                                     status=response.status_code)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(f"{where}: {declared} bytes declared, over the limit",
                               limit=max_bytes)
            media = _media_type(response.headers.get("content-type", ""), key, content_types)
            async with aclosing(_limited(response, max_bytes, where)) as body:
                stored = await _put(storage, key, body, media)
        except httpx.TimeoutException:
            raise DownloadTimeout(f"{where}: timed out") from None
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"{where}: {type(exc).__name__} while reading") from None
        finally:
            await response.aclose()
        log.info("relayed %d bytes from %s into %s", stored.size, where, key)
        return stored
    raise DownloadFailed(f"more than {max_redirects} redirects")


def request_for(target: Target, client: httpx.AsyncClient) -> httpx.Request:
    """The GET for one hop. Built by hand, not with `client.build_request`: the shared client's
    default headers, cookies and auth (an API key, say) must never reach a host a provider
    named."""
    return httpx.Request(
        "GET", target.url, headers={**_HEADERS, **target.headers},
        extensions={**target.extensions, "timeout": client.timeout.as_dict()},
    )


async def _put(
    storage: Storage, key: str, chunks: AsyncIterable[bytes], content_type: str
) -> StoredObject:
    """`storage.put`, then, if it failed, a best-effort delete: the backends here are
    all-or-nothing already, this keeps the promise for any other `Storage` too."""
    try:
        return await storage.put(key, chunks, content_type=content_type)
    except BaseException:
        try:
            await storage.delete(key)
        except StorageError:
            log.warning("could not delete %s after a failed relay", key, exc_info=True)
        raise


async def _limited(
    response: httpx.Response, max_bytes: int, where: str
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in response.aiter_bytes():
        received += len(chunk)
        if received > max_bytes:
            raise TooLarge(f"{where}: the body exceeds {max_bytes} bytes", limit=max_bytes)
        yield chunk


def _media_type(header: str, key: str, accepted: frozenset[str]) -> str:
    media = header.split(";", 1)[0].strip().lower() or "application/octet-stream"
    family = media.split("/", 1)[0]
    if not ({media, f"{family}/*", "*/*"} & accepted):
        raise UnexpectedContentType(f"the source sent {media[:60]!r}")
    if media in _GENERIC:
        return mimetypes.guess_type(key)[0] or media
    return media


async def _store_data_url(
    url: str, storage: Storage, key: str, max_bytes: int, content_types: frozenset[str]
) -> StoredObject:
    encoded_limit = 4 * -(-max_bytes // 3)
    if len(url) > 3 * encoded_limit + 1024:  # even fully percent-encoded it would be too big
        raise TooLarge("the data: URL is over the limit", limit=max_bytes)
    header, comma, payload = url[5:].partition(",")
    params = header.split(";")
    if not comma or params[-1].strip().lower() != "base64":
        raise DownloadFailed("only base64 data: URLs are accepted")
    declared = params[0].strip() if len(params) > 1 else ""
    media = _media_type(declared or "text/plain", key, content_types)  # RFC 2397's default
    if "%" in payload:
        payload = urllib.parse.unquote(payload)
    payload = "".join(payload.split())
    if len(payload) > encoded_limit:
        raise TooLarge("the data: URL is over the limit", limit=max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DownloadFailed("the data: URL is not valid base64") from None
    if len(data) > max_bytes:
        raise TooLarge("the data: URL is over the limit", limit=max_bytes)

    async def once() -> AsyncIterator[bytes]:
        yield data

    return await _put(storage, key, once(), media)
