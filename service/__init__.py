"""attnserve service, in three layers with control flowing one way (see the README's "The
service"): ``http/`` (app, middleware, errors, health, management, page) -> ``protocols/``
(``predict/``, ``v2/``) -> ``engine/`` (pipeline, batcher, queue, runtime, store). The modules
here are shared by all three: settings, state, errors, imaging, metrics, logs; ``cli`` is the
``attnserve`` command line."""
