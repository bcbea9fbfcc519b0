"""Names the operating system shows for the service's worker threads.

Python names its threads for itself only: ``top -H``, ``ps -L``, py-spy's native view and
``/proc/<pid>/task/*/comm`` all see every thread as ``python``. Naming them by role (the
threads OpenMP starts inherit the name of the inference thread that started them) lets an
operator see which role uses the cores, and lets the benchmark split the server's CPU per
request into inference, decode and post-processing (bench/stages.py).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

INFERENCE = "attn-infer"  # forward passes, and the OpenMP threads they start
DECODE = "attn-decode"  # decode and pre-process
POSTPROCESS = "attn-post"  # top-k, maps and mask encoding
ROLES = (INFERENCE, DECODE, POSTPROCESS)


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` (Linux keeps 15 bytes); elsewhere nothing happens."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(name[:15])
