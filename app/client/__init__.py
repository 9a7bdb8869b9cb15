"""The Python client of the twolayer API: `from app.client import Client`.

with Client("http://127.0.0.1:8000") as client:
    dataset = client.datasets.create(X, y, name="mine")
    run = client.runs.create(dataset, hidden_units=8, epochs=300)
    final = run.wait(progress=True)
    print(final.metrics, run.predict(X).labels)
"""

from app.client.client import Client, Datasets, Models, Prediction, Run, Runs
from app.client.errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TwolayerConnectionError,
    TwolayerError,
    ValidationError,
    WaitTimeoutError,
)
from app.client.events import EndEvent, EpochsEvent, RunEvent, StateEvent

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "Client",
    "ConflictError",
    "Datasets",
    "EndEvent",
    "EpochsEvent",
    "Models",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Prediction",
    "RateLimitError",
    "Run",
    "RunEvent",
    "Runs",
    "ServerError",
    "StateEvent",
    "TwolayerConnectionError",
    "TwolayerError",
    "ValidationError",
    "WaitTimeoutError",
]
