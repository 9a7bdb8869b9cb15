"""Logging to stderr, one format for every process: plain text (the terminal's
default) or JSON lines (`TWOLAYER_LOG_FORMAT=json`, for a log collector).

Every record carries the id of the request it was written for (`request_id`,
set by the API's middleware, app.api.observe) and of the run a worker is
training (`run_id`, set by app.worker.job.execute_run), where there is one:
both are context variables, so they follow a request into its worker threads
and never leak into another's. The JSON formatter writes a fixed set of keys
(below) and nothing else of the record: no header, no argument of a request
can reach a line by accident.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "twolayer_request_id", default=None
)
RUN_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("twolayer_run_id", default=None)


@contextmanager
def for_run(run_id: str) -> Iterator[None]:
    """The records written inside the block carry `run_id`."""
    token = RUN_ID.set(run_id)
    try:
        yield
    finally:
        RUN_ID.reset(token)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
FORMATS = ("text", "json")
# the extras a JSON line may carry besides its own keys (the access log's)
EXTRA_KEYS = ("method", "route", "path", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, process,
    message, request_id and run_id where there is one, the access log's fields,
    and the exception's traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        for key, value in (("request_id", REQUEST_ID.get()), ("run_id", RUN_ID.get())):
            value = getattr(record, key, None) or value
            if value is not None:
                line[key] = value
        for key in EXTRA_KEYS:
            if key in record.__dict__:
                line[key] = record.__dict__[key]
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


_handler: logging.Handler | None = None  # the root handler this module installed


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: str | None = None) -> None:
    """Log to stderr in `log_format` (default: $TWOLAYER_LOG_FORMAT, else text; an
    unknown value is text here, and the settings refuse it at start). As
    logging.basicConfig, nothing is installed if another handler already holds
    the root logger (a test's capture); called again, the format changes."""
    global _handler
    chosen = log_format or os.environ.get("TWOLAYER_LOG_FORMAT", "text").lower()
    root = logging.getLogger()
    if _handler is not None and _handler in root.handlers:
        _handler.setFormatter(formatter(chosen))
        return
    if root.handlers:
        return
    _handler = logging.StreamHandler()
    _handler.setFormatter(formatter(chosen))
    root.addHandler(_handler)
    root.setLevel(os.environ.get("TWOLAYER_LOG_LEVEL", "INFO").upper())
