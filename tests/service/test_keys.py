"""API keys as the service keeps them: only hashes are stored, and a key is
found by its prefix, then told apart by its hash compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.api import auth
from app.core.ids import new_id
from app.core.settings import Settings, configure
from app.db.base import utcnow
from app.db.models import ApiKey
from app.db.session import Database
from app.main import create_app
from app.services.keys import authenticate, create_key, list_keys, revoke_keys
from tests.service.conftest import RecordingExecutor, bearer, secured_settings


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every hmac.compare_digest call the key service makes, and its arguments."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("app.services.keys.hmac.compare_digest", spy)
    return calls


def test_a_key_is_told_apart_by_its_hash_compared_in_constant_time(
    db: Database, comparisons: list[tuple[Any, Any]]
) -> None:
    key = create_key(db=db, owner="carol")
    with db.read() as session:
        (stored,) = session.scalars(select(ApiKey)).all()
    assert stored.key_hash == sha256(key)
    assert key not in (stored.key_hash, stored.prefix)
    assert stored.prefix == key[3:11]

    assert authenticate(db=db, key=key) == "carol"
    assert comparisons == [(sha256(key), sha256(key))]  # hashes, never the key itself

    # another key with the same prefix: found as a candidate, refused by its hash
    comparisons.clear()
    forged = key[:11] + ("B" if key[11] == "A" else "A") + key[12:]
    assert authenticate(db=db, key=forged) is None
    assert comparisons == [(sha256(key), sha256(forged))]


def test_every_candidate_of_a_prefix_is_compared(
    db: Database, comparisons: list[tuple[Any, Any]]
) -> None:
    """Two live keys sharing a prefix: both hashes are compared whichever matches,
    so the time taken does not say which one did."""
    key = create_key(db=db, owner="carol")
    with db.write() as session:
        session.add(
            ApiKey(
                id=new_id(),
                owner="mallory",
                prefix=key[3:11],
                key_hash=sha256("tl_another"),
                created_at=utcnow(),
            )
        )
    assert authenticate(db=db, key=key) == "carol"
    compared = sorted(stored for stored, _ in comparisons)
    assert compared == sorted([sha256(key), sha256("tl_another")])
    assert {given for _, given in comparisons} == {sha256(key)}


def test_keys_that_cannot_be_live_are_refused(
    db: Database, comparisons: list[tuple[Any, Any]]
) -> None:
    key = create_key(db=db, owner="carol")
    assert authenticate(db=db, key=key[3:]) is None  # no tl_ prefix
    assert authenticate(db=db, key=key + "x" * 200) is None  # too long to be a key
    assert comparisons == []  # refused before any lookup
    assert authenticate(db=db, key=key + "x" * (200 - len(key))) is None  # 200: looked up
    assert len(comparisons) == 1
    other = create_key(db=db, owner="dave")
    assert revoke_keys(db=db, owner="carol") == 1
    assert revoke_keys(db=db, owner="carol") == 0  # already revoked
    assert authenticate(db=db, key=key) is None
    assert authenticate(db=db, key=other) == "dave"
    later = create_key(db=db, owner="carol")
    listed = [(k.owner, k.prefix, k.revoked_at is None) for k in list_keys(db=db)]
    # by owner, then oldest first; the prefix only, never the key
    assert listed == [
        ("carol", key[3:11], False),
        ("carol", later[3:11], True),
        ("dave", other[3:11], True),
    ]
    assert all(k.created_at is not None for k in list_keys(db=db))


@pytest.mark.parametrize("owner", ["", "x" * 101])
def test_an_owner_name_must_fit(db: Database, owner: str) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        create_key(db=db, owner=owner)
    assert create_key(db=db, owner="x" * 100).startswith("tl_")


def test_a_request_is_authenticated_once_and_a_verified_key_is_remembered(
    settings: Settings, keys: dict[str, str], recorder: RecordingExecutor, monkeypatch: Any
) -> None:
    """The gate authenticates a request from its headers and the route reads the
    owner it found (not a second lookup); within key_cache_seconds the next
    request does not reach the database at all."""
    looked_up: list[str] = []
    real = authenticate  # the service function the gate calls

    def counting(*, db: Database, key: str) -> str | None:
        looked_up.append(key)
        return real(db=db, key=key)

    monkeypatch.setattr(auth, "authenticate", counting)
    for cache_seconds, expected in ((0.0, [1, 2]), (60.0, [1, 1])):
        looked_up.clear()
        app = create_app(
            secured_settings(settings.database_url, key_cache_seconds=cache_seconds),
            executor_factory=lambda _: recorder,
        )
        with TestClient(app) as client:
            counts = []
            for _ in range(2):
                assert client.get("/datasets", headers=bearer(keys["alice"])).status_code == 200
                counts.append(len(looked_up))
        assert counts == expected, cache_seconds
        configure(None)


def test_the_key_cache_forgets_after_its_ttl_and_is_bounded() -> None:
    cache = auth.KeyCache()
    cache.put("d", "alice", 60)
    assert cache.get("d") == "alice"
    cache.put("e", "bob", 0)
    assert cache.get("e") is None  # expired at once
    cache = auth.KeyCache()
    for i in range(10_001):
        cache.put(str(i), "o", 60)
    assert all(cache.get(str(i)) == "o" for i in (0, 5000, 10_000))  # 10 001 kept
    cache.put("next", "o", 60)  # past 10 000 entries: cleared before this one
    assert cache.get("0") is None
    assert cache.get("next") == "o"


def test_what_the_header_must_say(
    settings: Settings, keys: dict[str, str], recorder: RecordingExecutor
) -> None:
    """The Bearer scheme only, any case, one or more spaces; each refusal says why."""
    key = keys["alice"]
    app = create_app(secured_settings(settings.database_url), executor_factory=lambda _: recorder)
    with TestClient(app) as client:
        for header in (f"Bearer {key}", f"bearer {key}", f"Bearer   {key}"):
            answer = client.get("/datasets", headers={"Authorization": header})
            assert answer.status_code == 200, header
        missing = "an API key is required: Authorization: Bearer KEY"
        refused = {
            "": missing,
            "Bearer": missing,
            "Bearer   ": missing,
            f"Basic {key}": missing,  # a valid key under another scheme is no key
            f"Token {key}": missing,
            "Bearer tl_nope": "the API key is not valid, or was revoked",
        }
        for header, detail in refused.items():
            answer = client.get("/datasets", headers={"Authorization": header})
            assert (answer.status_code, answer.json()["detail"]) == (401, detail), header
    configure(None)


def test_the_gate_refuses_before_the_body_is_read(
    settings: Settings, recorder: RecordingExecutor
) -> None:
    """Driven through ASGI itself: without a key the app answers 401 having never
    called `receive` (FastAPI's own routes read the body before their
    dependencies run, so only the gate can refuse first)."""
    app = create_app(secured_settings(settings.database_url), executor_factory=lambda _: recorder)
    received: list[object] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/runs",
        "raw_path": b"/runs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }

    async def call() -> None:
        await app(scope, receive, send)

    with TestClient(app) as client:
        assert client.portal is not None
        client.portal.call(call)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 401
    assert received == []
