"""The `twolayer` command: serve, worker, migrate, keys (the server's, which read and
validate its settings) and the client commands of app.client.cli (which do not)."""

from __future__ import annotations

import argparse
import logging
import sys

from app.client.cli import COMMANDS as CLIENT_COMMANDS
from app.client.cli import add_commands as add_client_commands
from app.client.cli import run_command
from app.core.logging import configure_logging
from app.core.settings import get_settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# A graceful stop waits this long for open requests (an events stream never
# ends by itself) before the workers are stopped: within the 10 s an
# orchestrator gives before its SIGKILL, with time left for their release
GRACEFUL_SHUTDOWN_SECONDS = 3


def own_metrics_directory() -> None:
    """A server or a worker starts its metrics from zero: a directory the operator
    gave ($PROMETHEUS_MULTIPROC_DIR) is emptied of an earlier run's values (one
    that app.core.metrics made for this process is new)."""
    from app.core import metrics

    metrics.clean()


def serve(host: str, port: int) -> None:
    own_metrics_directory()
    import uvicorn

    from app.api.timeouts import header_timeout_protocol
    from app.db.migrate import upgrade

    settings = get_settings()
    if settings.auth == "off" and host not in LOOPBACK and not host.startswith("127."):
        raise SystemExit(
            f"twolayer serve: refusing to serve without authentication on {host}; "
            "set TWOLAYER_AUTH=required (and create keys with `twolayer keys create`), "
            "or bind to 127.0.0.1"
        )
    if settings.is_sqlite:  # the embedded default migrates itself
        upgrade(settings.database_url)
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    logging.getLogger("twolayer").info("the dashboard: %s/ui, the API's docs: %s/docs", base, base)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        # JSON lines: uvicorn's own records go through the root logger's format
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=False,  # app.api.observe writes the access log
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        http=header_timeout_protocol(settings.header_timeout_seconds),
    )


def worker(concurrency: int, name: str | None) -> None:
    """A Celery worker: `concurrency` processes, one training at a time in each."""
    own_metrics_directory()
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


def keys(action: str, owner: str | None) -> None:
    from app.db.session import connect
    from app.services import keys as service

    db = connect(get_settings(), name="twolayer-keys", keep=0)
    try:
        if action == "create":
            assert owner is not None
            print(service.create_key(db=db, owner=owner))
        elif action == "revoke":
            assert owner is not None
            print(f"revoked {service.revoke_keys(db=db, owner=owner)} key(s) of {owner}")
        else:
            for key in service.list_keys(db=db):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
                print(f"{key.owner}\ttl_{key.prefix}…\t{key.created_at:%Y-%m-%d %H:%M}\t{state}")
    finally:
        db.dispose()


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
    keys_parser = commands.add_parser("keys", help="API keys (TWOLAYER_AUTH=required)")
    key_actions = keys_parser.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="print a new key for OWNER, once")
    create.add_argument("--owner", required=True)
    revoke = key_actions.add_parser("revoke", help="revoke every key of OWNER")
    revoke.add_argument("--owner", required=True)
    key_actions.add_parser("list", help="owners, key prefixes, states")
    add_client_commands(commands)
    args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # a client: the server's settings are not its own
        return run_command(args)
    configure_logging()
    try:
        configure_logging(get_settings().log_format)
    except Exception as exc:  # bad settings: fail fast with the reason
        print(f"twolayer: invalid settings: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(args.host, args.port)
    elif args.command == "worker":
        worker(args.concurrency, args.name)
    elif args.command == "keys":
        keys(args.action, getattr(args, "owner", None))
    elif args.command == "migrate":
        migrate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
