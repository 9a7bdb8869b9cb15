"""Identifiers. Generated sample datasets get ids derived from their parameters
and a key the server keeps secret, so the same request names the same dataset
while nobody can compute another owner's ids."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """Could this name a row? Anything else is answered as not found, unqueried."""
    return bool(_ID.match(value))


def new_id() -> str:
    return str(uuid.uuid4())


def sample_dataset_id(
    key: bytes, owner: str, kind: str, n_samples: int, noise: float, seed: int
) -> str:
    """Per owner: two owners asking for the same sample get two datasets. An
    HMAC-SHA256 under the server's key, written as a UUID: without the key the
    id cannot be computed from the owner and the parameters."""
    message = json.dumps([owner, kind, n_samples, float(noise), seed]).encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
