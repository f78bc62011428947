"""Local servers that speak the outside world's wire formats, for integration and e2e tests.

Each fake binds 127.0.0.1 on a free port, is an async context manager, records what it was
sent, and can be scripted per test with `script_next(op, Reply(...))`:

    kie.KieFake          kie.ai jobs API (create, recordInfo, signed/unsigned callbacks)
    evolink.EvolinkFake  evolink.ai video API (create, tasks, unsigned callbacks)
    image.ImageFake      OpenAI-compatible chat completions answering with images
"""

from ._server import TIGHT, Reply, http_client

__all__ = ["TIGHT", "Reply", "http_client"]
