"""Domain errors raised by services; app.api.problems turns them into problem+json (RFC 9457)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """An error a client caused or can act on; `status` is its HTTP status."""

    status: int = 400
    title: str = "Bad request"
    type: str = "about:blank"
    example: str = "the request cannot be served"  # a typical detail, for the API's documentation

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers


class NotFound(DomainError):
    status, title, type = 404, "Not found", "/problems/not-found"
    example = "run 9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c does not exist"


class Conflict(DomainError):
    status, title, type = 409, "Conflict", "/problems/conflict"


class DatasetInUse(Conflict):
    type = "/problems/dataset-in-use"
    example = "dataset 6c1f… is used by 2 run(s); delete them first"


class RunHasNoModel(Conflict):
    type = "/problems/run-has-no-model"
    example = "run 9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c has no weights yet (queued)"


class RunInRegistry(Conflict):
    type = "/problems/run-in-registry"
    example = "run 9b2f… is version 3 of model 'moons'; delete the version first"


class SweepEnded(Conflict):
    type = "/problems/sweep-ended"
    example = "sweep 9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c has already ended (succeeded)"


class ModelExists(Conflict):
    type = "/problems/model-exists"
    example = "a model named 'moons' exists already"


class VersionHasAlias(Conflict):
    type = "/problems/version-has-alias"
    example = "version 3 of model 'moons' is aliased champion; move or delete the alias first"


class RunNotSucceeded(Conflict):
    type = "/problems/run-not-succeeded"
    example = "run 9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c has not succeeded (running)"


class RunEnded(Conflict):
    type = "/problems/run-ended"
    example = "run 9b2f4c1e-5a7d-4e8b-9c3a-1d2e3f4a5b6c has already ended (succeeded)"


class WarmStartGone(Conflict):
    type = "/problems/warm-start-gone"
    example = (
        "run 9b2f… started from the weights of run 3c6e…, which has been deleted: it cannot "
        "be rerun"
    )


class NotTwoFeatures(Conflict):
    type = "/problems/not-two-features"
    example = (
        "dataset 6c1f… has 5 features; a decision boundary is drawn for a dataset of exactly two"
    )


class Unauthorized(DomainError):
    status, title, type = 401, "Unauthorized", "/problems/unauthorized"
    example = "an API key is required: Authorization: Bearer KEY"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class TooManyRuns(DomainError):
    status, title, type = 429, "Too many runs", "/problems/too-many-runs"
    example = "20 runs are queued or running, the limit is 20; try again when one has ended"


class Invalid(DomainError):
    status, title, type = 422, "Unprocessable content", "/problems/invalid"
    example = "instances have 3 features, the model of run 9b2f… expects 2"


class TooLarge(DomainError):
    status, title, type = 413, "Content too large", "/problems/too-large"
    example = "the request body is larger than the limit of 67108864 bytes"


class UnsupportedMediaType(DomainError):
    status, title, type = 415, "Unsupported media type", "/problems/unsupported-media-type"
    example = (
        "Content-Type application/json is not a file this accepts: send text/csv or "
        "application/vnd.apache.parquet"
    )


class RequestTimeout(DomainError):
    status, title, type = 408, "Request timeout", "/problems/request-timeout"
    example = "the request body paused for longer than 30 s"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class StorageFull(DomainError):
    """The owner's storage budget would be exceeded: the content that would be
    stored is too large for what is left (413); deleting datasets or runs frees it."""

    status, title, type = 413, "Storage budget exceeded", "/problems/storage-full"
    example = (
        "this would store 31.4 MiB; 4090.2 MiB of the owner's budget of 4096.0 MiB are used "
        "(TWOLAYER_MAX_STORED_BYTES_PER_OWNER): delete datasets or runs first"
    )


class DatabaseUnavailable(DomainError):
    """The database could not be reached (restarting, failing over): a read may
    be sent again shortly; a write may or may not have taken effect."""

    status, title, type = 503, "Database unavailable", "/problems/database-unavailable"
    example = (
        "the database cannot be reached right now; try again shortly (a write that was "
        "under way may have taken effect: look before sending it again)"
    )

    def __init__(self, detail: str = example) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})
