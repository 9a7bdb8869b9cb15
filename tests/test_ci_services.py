"""When CI says PostgreSQL and Redis are there, they must answer: nothing is
skipped for a missing service. (Locally, without the variables, these are skipped.)"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest


def reachable(url: str, default_port: int) -> None:
    parts = urlsplit(url.replace("+psycopg", ""))
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    with socket.create_connection((host, port), timeout=5):
        pass


@pytest.mark.skipif(
    "TWOLAYER_TEST_POSTGRES_URL" not in os.environ, reason="TWOLAYER_TEST_POSTGRES_URL not set"
)
def test_postgres_answers() -> None:
    reachable(os.environ["TWOLAYER_TEST_POSTGRES_URL"], 5432)


@pytest.mark.skipif(
    "TWOLAYER_TEST_REDIS_URL" not in os.environ, reason="TWOLAYER_TEST_REDIS_URL not set"
)
def test_redis_answers() -> None:
    url = os.environ["TWOLAYER_TEST_REDIS_URL"]
    reachable(url, 6379)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16).startswith(b"+PONG")
