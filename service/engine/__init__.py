"""The serving engine, which knows nothing of HTTP: Triton's scheduler and backend for attnserve.

    pipeline.py  Pipeline: one image or tensor to a Result (admission, decode backlog,
                 deadlines, the retry after a reload, refusal while loading or draining)
    batcher.py   DynamicBatcher: the batch policy (bounded queue, when and what to dispatch)
    runtime.py   ModelRuntime: one model version on one device, one worker thread
    store.py     ModelStore: the versions loaded from the repository, with their batchers
    statistics.py  VersionStatistics: Triton's per-version counters (the statistics extension)
    result.py    Result: the one type that leaves the engine, one per image

It imports from ``models/`` and ``service.errors``/``settings``/``metrics``/``imaging``, never
from the protocols or ``service.http``.
"""
