"""The fault repository's server, shared by the HTTP tests (the demo server is the session's
``demo_server``, from tests/conftest.py)."""

from collections.abc import Iterator

import pytest

from tests.service.fake_models import build_fault_repository
from tests.service.server import Server, running_server

API_KEY = "test-key-5f3a"
UPLOAD_LIMIT = 200_000
CORS_ORIGIN = "http://dashboard.example"


@pytest.fixture(scope="session")
def fault_repo(tmp_path_factory: pytest.TempPathFactory):
    return build_fault_repository(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="session")
def fault_server(fault_repo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "ATTNSERVE_MAX_QUEUE_SIZE": "4",
        "ATTNSERVE_API_KEY": API_KEY,
        "ATTNSERVE_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "ATTNSERVE_CORS_ORIGINS": f'["{CORS_ORIGIN}"]',
        "ATTNSERVE_LOG_FORMAT": "json",
    }
    logs = tmp_path_factory.mktemp("fault-logs")
    with running_server(fault_repo, logs, env, wait="loaded") as server:
        yield server
