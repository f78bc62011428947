"""How a provider module declares itself to the registry (`providers.PROVIDERS`).

Each third-party provider module ends with a `SPEC = ProviderSpec(...)`: its name (what
`[[models]] provider` says), the environment variable that holds its API key, the
`[generation]` settings it cannot work without, and how to build a client from them. Adding a
provider is its module plus one line in `providers/__init__.py`'s `PROVIDERS`; the composition
root (`bot/app.py`) builds the clients enabled models use from the registry, and `Secrets`
(`core.config`) accepts the key names it lists.

The demo provider is not registered: it needs no key and the service always builds it (it
serves the demo clips from our own web server).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

    from ._base import Provider

__all__ = ["ProviderSpec", "Setup"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """What a provider is built from: the shared client, its key, and its settings (each of
    the spec's `settings`, non-empty, by name)."""

    http: httpx.AsyncClient
    api_key: str
    settings: Mapping[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec:
    name: str
    key_variable: str  # the environment variable that holds the API key
    build: Callable[[Setup], Provider]
    # `[generation]` keys that must be set, each with what to set it to (for the start-up
    # error), e.g. ("image_base_url", "the gateway's URL").
    settings: tuple[tuple[str, str], ...] = ()
