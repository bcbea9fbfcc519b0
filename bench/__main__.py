"""``python -m bench [--quick] [part ...]``: run the benchmark, print the tables, write them to
``bench/results/<date>-<machine>.md``.

Parts: ``limit`` (1: in-process), ``service`` (2 and 5: the service under load, with its
per-stage breakdown), ``baseline`` (3: the hand-written FastAPI app), ``peers`` (3: LitServe,
mosec and TorchServe, each from its own venv; a missing one is skipped, with a line saying
so), ``costs`` (4: maps, masks, v2), ``foreign`` (6: one core busy), ``slo`` (7: a latency target
against the fixed batch). Default: all. ``ATTNSERVE_*`` variables in the
environment reach the server under test.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from bench.config import PARTS, RESULTS, BenchConfig
from models.repository.layout import DEMO_REPOSITORY
from service.malloc import retain_freed_memory
from service.openmp import apply_defaults


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help=f"{', '.join(PARTS)}; default: all"
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per cell")
    parser.add_argument(
        "--repo",
        type=Path,
        default=DEMO_REPOSITORY,
        help="demo repository (built if absent)",
    )
    parser.add_argument(
        "--target",
        default=BenchConfig.target,
        help="zoo architecture to export, or a model of --repo",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}: choose from {', '.join(PARTS)}")
    # before torch loads: the in-process figures wait as the service's threads do, so the
    # service is compared with its own model under the same OpenMP policy; and their threads
    # keep freed memory as the service's do (service/malloc.py)
    apply_defaults()
    retain_freed_memory()
    from bench.machine import Machine
    from bench.parts import log
    from bench.runner import run

    config = BenchConfig(target=args.target)
    config = config.quick() if args.quick else config
    text = run(config, set(args.parts) or set(PARTS), args.repo, args.quick)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    out = args.out_dir / f"{date.today().isoformat()}-{Machine.describe().slug()}{suffix}.md"
    out.write_text(text)
    log(f"# written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
