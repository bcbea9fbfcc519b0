"""The wire protocols, one package each: parse a request into engine calls, encode the engine's
results into bytes. ``body.py`` reads request bodies with a cap, for every protocol.

A protocol imports the engine's public names (:class:`~service.engine.pipeline.Pipeline`,
``Target``, ``Result``), never its internals, and nothing of :mod:`service.http`.
"""
