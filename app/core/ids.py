"""Identifiers. Generated sample datasets get ids derived from their parameters,
so the same request names the same dataset (and Swagger UI's examples chain)."""

from __future__ import annotations

import json
import re
import uuid

SAMPLES_NAMESPACE = uuid.UUID("6f1d1c8e-5d0b-4e8e-9c3a-2b7f0e4a9d51")


ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID = re.compile(ID_PATTERN)


def is_id(value: str) -> bool:
    """Could this name a row? Anything else is answered as not found, unqueried."""
    return bool(_ID.match(value))


def new_id() -> str:
    return str(uuid.uuid4())


def sample_dataset_id(owner: str, kind: str, n_samples: int, noise: float, seed: int) -> str:
    """Per owner: two owners asking for the same sample get two datasets."""
    key = json.dumps([owner, kind, n_samples, float(noise), seed])
    return str(uuid.uuid5(SAMPLES_NAMESPACE, key))
