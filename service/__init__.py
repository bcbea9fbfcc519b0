"""attnserve service: the HTTP inference server and the ``attnserve`` command line."""
