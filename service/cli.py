"""The ``attnserve`` command line: ``serve``, ``export`` and ``demo build``.

Each subcommand parses its arguments and hands over to the package that does the work;
failures print one line and exit non-zero, never a traceback for a user error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from models.repository.layout import DEMO_REPOSITORY as DEFAULT_REPO


def add_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a zoo architecture into a repository")
    parser.add_argument("architecture", metavar="NAME", help="registered architecture name")
    parser.add_argument("--repo", type=Path, required=True, help="model repository folder")
    parser.add_argument("--name", help="model name in the repository (default: NAME)")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument("--weights", type=Path, help="checkpoint (state dict) to load")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--labels", help="comma-separated class labels (sets the class count)")
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> None:
    from models.export import ExportRequest, export_model, load_weights
    from models.repository.layout import version_dir
    from models.zoo import build_model, get_architecture

    labels = args.labels.split(",") if args.labels else None
    request = ExportRequest(
        architecture=args.architecture,
        repo=args.repo,
        name=args.name,
        version=args.version,
        input_size=tuple(args.input_size) if args.input_size else None,
        labels=labels,
        num_classes=len(labels) if labels else args.num_classes,
    )
    model = None
    if args.weights is not None:
        spec = get_architecture(args.architecture)
        model = build_model(spec, request.num_classes, request.input_size)
        load_weights(model, args.weights)
    config = export_model(request, model)
    version = config.latest_version
    assert version is not None  # export_model returns the config with its new version
    folder = version_dir(args.repo, config.name, version)
    print(f"exported {config.name} version {version} to {folder}")
    print(f"attention maps: {', '.join(config.attention_maps) or '(none)'}")


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="demo models trained on generated shapes")
    demo = parser.add_subparsers(dest="demo_command", required=True)
    build = demo.add_parser(
        "build", help="export the demo classifier and segmenter from the shipped weights"
    )
    build.add_argument("--repo", type=Path, default=DEFAULT_REPO)
    build.add_argument(
        "--train",
        action="store_true",
        help="train both from scratch first (minutes) and rewrite the weights and manifest",
    )
    build.add_argument("--seed", type=int, default=0, help="training seed (with --train)")
    build.add_argument(
        "--weights", type=Path, help="weights folder (default: the shipped models/demo/weights)"
    )
    build.set_defaults(run=run_demo_build)


def run_demo_build(args: argparse.Namespace) -> None:
    from models.demo.build import build_demo_repository
    from models.demo.shipped import WEIGHTS_DIR

    build_demo_repository(
        args.repo,
        seed=args.seed,
        log=print,
        train_models=args.train,
        weights=args.weights or WEIGHTS_DIR,
    )


def add_serve(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve a model repository over HTTP (flags override ATTNSERVE_* variables)"
    )
    parser.add_argument("--repo", type=Path, help="model repository (default: the demo one)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 8000)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N (default auto)")
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    from service.openmp import apply_defaults

    apply_defaults()  # before the server's imports load torch (service/openmp.py says why)
    from service.malloc import retain_freed_memory

    retain_freed_memory()  # before the models load (service/malloc.py says why)
    from service.http.server import serve
    from service.settings import Settings

    flags = {k: getattr(args, k) for k in ("repo", "host", "port", "device")}
    serve(Settings(**{k: v for k, v in flags.items() if v is not None}))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnserve", description=__doc__.split("\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_export(subparsers)
    add_demo(subparsers)
    add_serve(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as error:
        print(f"attnserve {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
