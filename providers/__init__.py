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
    demo         renders a clip locally and calls back signed (X-Signature, HMAC-SHA256)

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
from .demo import DemoProvider, demo_signature
from .evolink import EvolinkClient
from .image import ImageClient, data_url, extract_image_urls
from .kie import KieClient, kie_signature

__all__ = [
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
    "ProviderTimeout",
    "ProviderUnavailable",
    "RetryPolicy",
    "TaskNotFound",
    "TaskRequest",
    "TaskState",
    "TaskStatus",
    "data_url",
    "demo_signature",
    "extract_image_urls",
    "kie_signature",
]
