"""The HTTP layer: ``app`` (assembly), ``server`` (uvicorn and the graceful drain),
``context`` (request id and access log), ``middleware`` (request metrics, in-flight count),
``errors`` (the one error body), ``health``, ``management`` and ``page`` (the demo page)."""
