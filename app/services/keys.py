"""API keys: created once and shown once; only their SHA-256 is stored.

A key is `tl_` + 43 URL-safe characters (256 random bits). Its first 8
characters after `tl_` (the prefix, not secret) find the candidate rows; the
hashes are compared in constant time. A fast hash is right here: the key is
random, not a password, so there is nothing to guess.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from app.core.ids import new_id
from app.db.base import utcnow
from app.db.models import ApiKey
from app.db.session import Database

KEY_PREFIX = "tl_"
PREFIX_LENGTH = 8


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _prefix(key: str) -> str:
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + PREFIX_LENGTH]


def create_key(*, db: Database, owner: str) -> str:
    """A new key for `owner`; the only time it exists in clear."""
    if not owner or len(owner) > 100:
        raise ValueError("owner must be 1 to 100 characters")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.write() as session:
        session.add(
            ApiKey(
                id=new_id(),
                owner=owner,
                prefix=_prefix(key),
                key_hash=_hash(key),
                created_at=utcnow(),
            )
        )
    return key


def revoke_keys(*, db: Database, owner: str) -> int:
    """Revoke every live key of `owner`; returns how many."""
    with db.write() as session:
        result = session.execute(
            update(ApiKey)
            .where(ApiKey.owner == owner, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class KeyInfo:
    owner: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


def list_keys(*, db: Database) -> list[KeyInfo]:
    with db.read() as session:
        rows = session.scalars(select(ApiKey).order_by(ApiKey.owner, ApiKey.created_at)).all()
        return [KeyInfo(r.owner, r.prefix, r.created_at, r.revoked_at) for r in rows]


def authenticate(*, db: Database, key: str) -> str | None:
    """The owner of a live key, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = _hash(key)
    with db.read() as session:
        candidates = session.execute(
            select(ApiKey.key_hash, ApiKey.owner).where(
                ApiKey.prefix == _prefix(key), ApiKey.revoked_at.is_(None)
            )
        ).all()
    owner = None
    for stored, candidate_owner in candidates:
        if hmac.compare_digest(stored, digest):
            owner = candidate_owner
    return owner
