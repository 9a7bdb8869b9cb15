"""Retries and the exception of each status (httpx2.MockTransport stands in for
the server), and the events stream's reconnection, against a fake stream and
against a live server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2 as httpx
import pytest

from app.client import (
    APIError,
    AuthenticationError,
    BadRequestError,
    Client,
    ConflictError,
    EndEvent,
    EpochsEvent,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TwolayerConnectionError,
    TwolayerError,
    ValidationError,
)
from app.client import transport as retries
from app.schemas.runs import EXAMPLE_RUN_ID, RunRead

RUN: dict[str, Any] = RunRead.model_json_schema()["examples"][0]
UNAVAILABLE = {
    "type": "/problems/database-unavailable",
    "title": "Database unavailable",
    "status": 503,
    "detail": "the database cannot be reached; try again shortly",
}


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait between tries, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(retries, "pause", waited.append)
    return waited


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler giving these answers in turn (an exception is raised), and the requests."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, seen


def client_for(handler: Handler, **options: Any) -> Client:
    return Client("http://twolayer.test", transport=httpx.MockTransport(handler), **options)


def test_a_503_then_200_is_retried_after_its_retry_after(pauses: list[float]) -> None:
    handler, seen = scripted(
        httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "1"}),
        httpx.Response(200, json=RUN),
    )
    run = client_for(handler).runs.get(EXAMPLE_RUN_ID)
    assert run.id == EXAMPLE_RUN_ID
    assert len(seen) == 2
    assert pauses == [1.0]


def test_a_429_post_is_retried_honouring_retry_after(pauses: list[float]) -> None:
    handler, seen = scripted(
        httpx.Response(
            429,
            json={"title": "Too many runs", "status": 429, "detail": "wait"},
            headers={"Retry-After": "7"},
        ),
        httpx.Response(202, json=RUN),
    )
    run = client_for(handler).runs.create("some-dataset", epochs=5)
    assert run.status == "succeeded"
    assert [r.method for r in seen] == ["POST", "POST"]
    assert json.loads(seen[1].content)["hyperparameters"] == {"epochs": 5}
    assert pauses == [7.0]


def test_a_post_answered_500_is_not_sent_again(pauses: list[float]) -> None:
    handler, seen = scripted(
        httpx.Response(500, json={"title": "Internal server error", "status": 500, "detail": "x"})
    )
    with pytest.raises(ServerError) as failed:
        client_for(handler).runs.create("some-dataset")
    assert failed.value.status == 500
    assert len(seen) == 1
    assert pauses == []


def test_a_post_answered_503_is_not_sent_again_unless_it_changes_nothing(
    pauses: list[float],
) -> None:
    """A 503 while the database is away may follow a commit whose answer was
    lost: POST /runs is raised, never sent twice; POST /predict is sent again."""
    handler, seen = scripted(
        httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "1"}),
    )
    with pytest.raises(ServerError) as failed:
        client_for(handler).runs.create("some-dataset")
    assert failed.value.status == 503
    assert len(seen) == 1
    assert pauses == []
    answer = {"run_id": EXAMPLE_RUN_ID, "probabilities": [0.25], "labels": [0]}
    handler, seen = scripted(
        httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "1"}),
        httpx.Response(200, json=answer),
    )
    prediction = client_for(handler).predict([[0.0, 1.0]], run_id=EXAMPLE_RUN_ID)
    assert list(prediction.probabilities) == [0.25]
    assert [r.url.path for r in seen] == ["/predict", "/predict"]
    assert pauses == [1.0]


def test_a_get_is_retried_on_500_and_on_a_broken_read(pauses: list[float]) -> None:
    handler, seen = scripted(
        httpx.Response(500, json={"title": "Internal server error", "status": 500, "detail": "x"}),
        httpx.ReadError("connection reset"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json=RUN),
    )
    assert client_for(handler).runs.get(EXAMPLE_RUN_ID).id == EXAMPLE_RUN_ID
    assert len(seen) == 4
    assert len(pauses) == 3
    assert all(0 < p <= 8.5 for p in pauses)  # exponential backoff, capped


def test_a_post_is_retried_on_a_connect_error_only(pauses: list[float]) -> None:
    handler, seen = scripted(httpx.ConnectError("refused"), httpx.Response(202, json=RUN))
    client_for(handler).runs.create("some-dataset")
    assert len(seen) == 2
    handler, seen = scripted(httpx.ReadError("reset after the request was sent"))
    with pytest.raises(TwolayerConnectionError):
        client_for(handler).runs.create("some-dataset")
    assert len(seen) == 1


def test_max_retries_then_the_last_problem_is_raised(pauses: list[float]) -> None:
    answers = [
        httpx.Response(
            429,
            json={"title": "Too many", "status": 429, "detail": "d"},
            headers={"Retry-After": "2"},
        )
        for _ in range(3)
    ]
    handler, seen = scripted(*answers)
    with pytest.raises(RateLimitError) as limited:
        list(client_for(handler, max_retries=2).datasets.list())
    assert len(seen) == 3
    assert limited.value.retry_after == 2.0
    assert limited.value.title == "Too many"
    assert pauses == [2.0, 2.0]


def sse(event: str, id_: int, data: dict[str, Any]) -> bytes:
    return f"event: {event}\nid: {id_}\ndata: {json.dumps(data)}\n\n".encode()


def epochs(first: int, last: int) -> dict[str, Any]:
    n = range(first, last + 1)
    return {
        "epoch": list(n),
        "train_cost": [1 / e for e in n],
        "validation_cost": None,
        "train_accuracy": [0.5 for _ in n],
        "validation_accuracy": None,
    }


class Dropping(httpx.SyncByteStream):
    """A body that breaks off after its chunks, as a dropped connection does."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.ReadError("connection dropped")


def test_a_dropped_stream_reconnects_with_last_event_id(pauses: list[float]) -> None:
    state = {
        "status": "running",
        "epoch": 0,
        "epochs": 4,
        "queue_position": None,
        "eta_seconds": 1.0,
    }
    first = [sse("status", 0, state), sse("epochs", 2, epochs(1, 2))]
    rest = [
        sse("status", 2, {**state, "epoch": 2}),
        sse("epochs", 4, epochs(3, 4)),
        sse(
            "end",
            4,
            {
                **state,
                "status": "succeeded",
                "epoch": 4,
                "reason": "ended",
                "error": None,
                "metrics": None,
                "best_epoch": None,
                "warnings": [],
            },
        ),
    ]
    headers = {"content-type": "text/event-stream"}
    handler, seen = scripted(
        httpx.Response(200, json={**RUN, "status": "running"}),
        httpx.Response(200, headers=headers, stream=Dropping(first)),
        httpx.Response(200, headers=headers, content=b"".join(rest)),
    )
    events = list(client_for(handler).runs.get(EXAMPLE_RUN_ID).events())
    got = [e for ev in events if isinstance(ev, EpochsEvent) for e in ev.history.epoch]
    assert got == [1, 2, 3, 4]  # nothing missed, nothing twice
    assert isinstance(events[-1], EndEvent)
    assert "last-event-id" not in seen[1].headers
    assert seen[2].headers["last-event-id"] == "2"
    assert len(pauses) == 1


class DropFirstStream(httpx.BaseTransport):
    """Real HTTP, but the first events stream breaks off after its first epochs event."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = False
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self.inner.handle_request(request)
        if self.dropped or not request.url.path.endswith("/events"):
            return response
        self.dropped = True
        inner = response.stream

        class Cut(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                seen = b""
                for chunk in inner:  # type: ignore[union-attr]
                    yield chunk
                    seen += chunk
                    if b"event: epochs" in seen and seen.endswith(b"\n\n"):
                        break
                response.close()
                raise httpx.ReadError("connection dropped")

        return httpx.Response(response.status_code, headers=response.headers, stream=Cut())

    def close(self) -> None:
        self.inner.close()


def test_a_dropped_live_stream_misses_no_epoch(live_url: str) -> None:
    cut = DropFirstStream()
    with Client(live_url, transport=cut) as client:
        dataset = client.datasets.sample("xor", n_samples=80)
        run = client.runs.create(dataset, epochs=1500, batch_size=None)
        events = list(run.events())
        got = [e for ev in events if isinstance(ev, EpochsEvent) for e in ev.history.epoch]
        assert cut.dropped
        streams = [r for r in cut.requests if r.url.path.endswith("/events")]
        assert len(streams) >= 2
        assert "last-event-id" in streams[1].headers
        assert isinstance(events[-1], EndEvent)
        assert events[-1].status == "succeeded"
        assert got == list(range(1, 1501)) == run.history().epoch


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (418, APIError),
        (422, ValidationError),
        (429, RateLimitError),
        (502, ServerError),
    ],
)
def test_each_status_raises_its_exception(
    status: int, error: type[APIError], pauses: list[float]
) -> None:
    problem = {
        "type": f"/problems/p{status}",
        "title": f"title {status}",
        "status": status,
        "detail": f"detail {status}",
        "errors": [{"loc": ["body", "x"], "msg": "m", "type": "t"}],
    }
    handler, _ = scripted(
        httpx.Response(status, json=problem, headers={"content-type": "application/problem+json"})
    )
    with pytest.raises(APIError) as raised:
        client_for(handler, max_retries=0).runs.create("some-dataset")
    assert type(raised.value) is error
    assert isinstance(raised.value, TwolayerError)
    got = raised.value
    assert (got.status, got.type, got.title, got.detail) == (
        status,
        f"/problems/p{status}",
        f"title {status}",
        f"detail {status}",
    )
    assert got.errors == problem["errors"]
    assert json.loads(got.body) == problem


def test_an_events_stream_answered_503_opens_again_after_retry_after(pauses: list[float]) -> None:
    end = {"status": "succeeded", "epoch": 0, "epochs": 1, "reason": "ended", "warnings": []}
    handler, seen = scripted(
        httpx.Response(200, json=RUN),
        httpx.Response(503, json=UNAVAILABLE, headers={"Retry-After": "1"}),
        httpx.Response(200, content=sse("end", 0, end)),
    )
    events = list(client_for(handler).runs.get(EXAMPLE_RUN_ID).events())
    assert [type(e) for e in events] == [EndEvent]
    assert len(seen) == 3
    assert pauses == [1.0]
