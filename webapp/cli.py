"""musicgen-app: serve the page on this machine (127.0.0.1 unless told otherwise). The web libraries are the `app`
extra, imported once the arguments are read.

    musicgen-app                                   # the embedded model at http://127.0.0.1:7860
    musicgen-app --model runs/lm/model --model ~/musicgen-small --port 8000
"""
from __future__ import annotations

import argparse
from pathlib import Path

PROGRAM = "musicgen-app"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="A local web page that generates music with MusicGen "
                                                               "models and plays it while it is being made.")
    parser.add_argument("--model", type=Path, action="append", default=[], metavar="DIR",
                        help="a checkpoint directory to offer besides the embedded model (repeat for several)")
    parser.add_argument("--no-default", action="store_true", help="offer only the --model directories")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="default 7860")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        import uvicorn

        from .jobs import JobQueue
        from .models import ModelShelf
        from .server import create_app
    except ImportError as error:
        raise SystemExit(f"{PROGRAM} needs the app extra: pip install 'musicgen-lite[app]' ({error})") from None
    try:
        shelf = ModelShelf(args.model, include_default=not args.no_default)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"{PROGRAM}: {error}") from None
    jobs = JobQueue(shelf)
    print(f"{PROGRAM}: http://{args.host}:{args.port}/ (models: {', '.join(shelf.names)})", flush=True)
    try:
        uvicorn.run(create_app(jobs), host=args.host, port=args.port, log_level="warning")
    finally:
        jobs.stop()


if __name__ == "__main__":
    main()
