"""Identifiers. Generated sample datasets get ids derived from their parameters,
so the same request names the same dataset (and Swagger UI's examples chain)."""

from __future__ import annotations

import json
import uuid

SAMPLES_NAMESPACE = uuid.UUID("6f1d1c8e-5d0b-4e8e-9c3a-2b7f0e4a9d51")


def new_id() -> str:
    return str(uuid.uuid4())


def sample_dataset_id(kind: str, n_samples: int, noise: float, seed: int) -> str:
    return str(uuid.uuid5(SAMPLES_NAMESPACE, json.dumps([kind, n_samples, float(noise), seed])))
