"""Deliberately broken copies of the real files: every validator test also proves the validator
rejects something, so a check that silently accepts anything cannot pass."""

from __future__ import annotations

import shutil
from pathlib import Path


def replace_once(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced; fails loudly when ``old`` is gone (the real file changed
    and the breakage would no longer break anything)."""
    assert text.count(old) >= 1, f"{old!r} no longer occurs: update the broken-copy test"
    return text.replace(old, new, 1)


def broken_copy(source: Path, target: Path, old: str, new: str) -> Path:
    """Copy ``source`` (a file or a folder) to ``target``; in a file, replace ``old`` by ``new``."""
    if source.is_dir():
        shutil.copytree(source, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(replace_once(source.read_text(), old, new))
    return target
