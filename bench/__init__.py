"""attnserve's own benchmark: the model's in-process limit, the service under load, a minimal
FastAPI baseline, the cost of maps/masks/v2, and a per-stage breakdown, in one run.

``python -m bench [--quick] [part ...]``; results go to ``bench/results/<date>-<machine>.md``.
Every load run is bounded in time and in request count, and talks to 127.0.0.1 only.
"""
