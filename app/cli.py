"""The `twolayer` command: serve, worker, migrate."""

from __future__ import annotations

import argparse
import sys

from app.core.logging import configure_logging
from app.core.settings import get_settings


def serve(host: str, port: int) -> None:
    import uvicorn

    from app.db.migrate import upgrade

    settings = get_settings()
    if settings.is_sqlite:  # the embedded default migrates itself
        upgrade(settings.database_url)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
    )


def worker(concurrency: int, name: str | None) -> None:
    """A Celery worker: `concurrency` processes, one training at a time in each."""
    from app.worker.celery_app import QUEUE, celery

    settings = get_settings()
    if celery is None or settings.executor != "celery":
        raise SystemExit(
            "twolayer worker: set TWOLAYER_EXECUTOR=celery and TWOLAYER_BROKER_URL "
            "(the local executor starts its workers itself)"
        )
    celery.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            "--prefetch-multiplier=1",
            f"--queues={QUEUE}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            *([f"--hostname={name}"] if name else []),
        ]
    )


def migrate() -> None:
    from app.db.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database is at the latest migration")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twolayer", description="two-layer networks as a service")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="serve the API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    worker_parser = commands.add_parser("worker", help="a Celery worker (TWOLAYER_EXECUTOR=celery)")
    worker_parser.add_argument("--concurrency", type=int, default=1, help="processes (default 1)")
    worker_parser.add_argument("--name", help="Celery node name, e.g. worker1@%%h")
    commands.add_parser("migrate", help="alembic upgrade head on TWOLAYER_DATABASE_URL")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        get_settings()
    except Exception as exc:  # bad settings: fail fast with the reason
        print(f"twolayer: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(args.host, args.port)
    elif args.command == "worker":
        worker(args.concurrency, args.name)
    elif args.command == "migrate":
        migrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
