"""The operating system sees the service's worker threads by role (service/thread_names.py):
the inference threads and the OpenMP threads they start, the decode threads and the
post-processing threads, read from /proc of a real server after it answered a request."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from models.demo.shapes import generate_batch
from service.thread_names import DECODE, INFERENCE, POSTPROCESS, name_os_thread
from tests.service.images import encode
from tests.service.server import Server

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc only")


def thread_names(pid: int) -> Counter[str]:
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        names[(task / "comm").read_text().strip()] += 1
    return names


def test_every_worker_role_has_its_name_in_a_real_server(demo_server: Server) -> None:
    (image,) = generate_batch(7, 1, 64)[0]
    with demo_server.client() as client:
        response = client.post(
            "/predict", content=encode(image), headers={"content-type": "image/png"}
        )
    assert response.status_code == 200, response.text
    names = thread_names(demo_server.process.pid)
    assert names[INFERENCE] >= 2  # at least one inference thread per model
    assert names[DECODE] >= 1 and names[POSTPROCESS] >= 1, names


def test_the_name_is_the_calling_threads_only() -> None:
    seen: list[str] = []

    def worker() -> None:
        name_os_thread("attn-test-a-very-long-name")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == ["attn-test-a-ver\n"]  # Linux keeps 15 bytes
    assert Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text() != seen[0]
