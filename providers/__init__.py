"""Clients of the AI providers (kie, evolink, image try-on, demo) behind one Protocol.

Modules:
    _base        the `Provider` Protocol and its values: TaskRequest, TaskStatus, TaskState,
                 CallbackHint
    _exceptions  the exception tree (drawn in its docstring), rooted at ProviderError
    _http        the one request path: retry policy (create-task POSTs are retried only when
                 nothing can have been created), error mapping, key redaction
    kie          kie.ai jobs API (Sora 2), optional HMAC-signed callbacks
    evolink      evolink.ai video API, unsigned callbacks
    image        OpenAI-compatible chat-completions image model (try-on), synchronous
    demo         renders a clip locally and calls back signed (X-Signature, HMAC-SHA256);
                 `_clip` holds its limits and errors, `_render` (PyAV, Pillow) draws, loaded
                 on the first render only
    _spec        ProviderSpec: how a provider module declares itself to `PROVIDERS`

Registry: `PROVIDERS` maps a provider's name (`[[models]] provider`) to its `ProviderSpec`
(the API key's environment variable, the `[generation]` settings it needs, how to build it).
A new provider is its module, ending in `SPEC = ProviderSpec(...)`, and one line below;
`bot/app.py` builds clients from the registry and `core.config.Secrets` accepts its keys.

Every client takes the caller's shared `httpx.AsyncClient` (which carries the timeouts) and
builds nothing at import time. Callback hints are never evidence for moving money: re-query;
the one exception is the demo's, whose whole body is signed with a key we hold.

    ProviderError                 .provider, .maybe_created
     ├── ProviderTimeout
     ├── ProviderUnavailable      .status
     ├── ProviderRejected         .code, .reason, .status
     │    ├── ProviderAuthError
     │    ├── ProviderNoBalance
     │    ├── ProviderBadInput
     │    ├── TaskNotFound
     │    └── ProviderRateLimited .retry_after
     ├── ProviderProtocolError
     └── BadCallback
          └── BadSignature
"""

from collections.abc import Mapping
from types import MappingProxyType

from . import evolink, image, kie
from ._base import CallbackHint, Provider, TaskRequest, TaskState, TaskStatus
from ._exceptions import (
    BadCallback,
    BadSignature,
    ProviderAuthError,
    ProviderBadInput,
    ProviderError,
    ProviderNoBalance,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    TaskNotFound,
)
from ._http import RetryPolicy
from ._spec import ProviderSpec, Setup
from .demo import DemoProvider, demo_signature
from .evolink import EvolinkClient
from .image import ImageClient, data_url, extract_image_urls
from .kie import KieClient, kie_signature

# The registry: one line per third-party provider (the demo is built by the service itself).
PROVIDERS: Mapping[str, ProviderSpec] = MappingProxyType({spec.name: spec for spec in (
    kie.SPEC,
    evolink.SPEC,
    image.SPEC,
)})

__all__ = [
    "PROVIDERS",
    "BadCallback",
    "BadSignature",
    "CallbackHint",
    "DemoProvider",
    "EvolinkClient",
    "ImageClient",
    "KieClient",
    "Provider",
    "ProviderAuthError",
    "ProviderBadInput",
    "ProviderError",
    "ProviderNoBalance",
    "ProviderProtocolError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderSpec",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RetryPolicy",
    "Setup",
    "TaskNotFound",
    "TaskRequest",
    "TaskState",
    "TaskStatus",
    "data_url",
    "demo_signature",
    "extract_image_urls",
    "kie_signature",
]
