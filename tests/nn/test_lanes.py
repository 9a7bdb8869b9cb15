"""A large batch's two lanes (app.nn.lanes): the plan of pieces, the helper
thread, and training that computes bit for bit alike on one thread or two."""

from __future__ import annotations

import gc
import itertools
import signal
import threading
import time
import weakref
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from app.nn import BatchGradient, Hyperparameters, Trainer, initialize
from app.nn.lanes import LANES, MIN_PIECE, SPLIT_WORK, Lanes, plan
from app.nn.training import Progress


def lane_threads() -> int:
    return sum(t.name == "twolayer-lane" and t.is_alive() for t in threading.enumerate())


@pytest.fixture(autouse=True)
def one_blas_thread() -> Iterator[None]:
    """As the worker trains (app/worker/threads.py); the lanes' threads then are
    the only parallelism."""
    with threadpool_limits(1, user_api="blas"):
        yield


@given(
    b=st.integers(1, 20_000),
    n_x=st.integers(1, 300),
    n_h=st.integers(1, 300),
    chunk=st.integers(MIN_PIECE, 8192),
    itemsize=st.sampled_from([4, 8]),
)
def test_the_plan_covers_every_column_once_in_cache_sized_pieces(
    b: int, n_x: int, n_h: int, chunk: int, itemsize: int
) -> None:
    lanes = plan(b, n_x, n_h, chunk, itemsize)
    ranges = sorted(r for lane in lanes for r in lane)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == b
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(ranges))
    assert all(0 < stop - start <= chunk for start, stop in ranges)
    if len(lanes) == 1:
        assert b < LANES * MIN_PIECE or n_h * (n_x + 1) * b * itemsize < SPLIT_WORK
    else:
        assert len(lanes) == LANES
        assert len(lanes[0]) == len(lanes[1])
        widths = [stop - start for start, stop in ranges]
        assert max(widths) - min(widths) <= len(widths)  # near-equal
        assert lanes[0][0][0] == 0  # lane 0's pieces alternate with lane 1's


def data(m: int = 2500, n_x: int = 70, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_x, m))
    Y = ((X[0] * X[-1] + 0.3 * X[1]) > 0).astype(np.float64).reshape(1, -1)
    return X, Y


def hyperparameters(**overrides: object) -> Hyperparameters:
    values: dict[str, object] = {
        "hidden_units": 64,
        "epochs": 3,
        "batch_size": 2000,
        "learning_rate": 0.05,
        "validation_fraction": 0.1,
        "seed": 5,
    }
    return Hyperparameters(**(values | overrides))  # type: ignore[arg-type]


CASES: dict[str, dict[str, object]] = {
    "relu-f64": {},
    "tanh-f32": {"hidden_activation": "tanh", "dtype": "float32", "l2": 0.01},
    "full-batch-adam": {"batch_size": None, "optimizer": "adam"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_threads_train_bit_for_bit_as_one(case: str) -> None:
    X, Y = data()
    hp = hyperparameters(**CASES[case])
    b, itemsize = (2000 if hp.batch_size else 2250), np.dtype(hp.dtype).itemsize
    assert len(plan(b, 70, 64, 2048, itemsize)) == LANES  # lanes in use
    one = Trainer(X, Y, hp, threads=1).run()
    two = Trainer(X, Y, hp, threads=2).run()
    np.testing.assert_array_equal(two.model.params.theta, one.model.params.theta)
    for key, column in one.history.columns().items():
        np.testing.assert_array_equal(two.history.columns()[key], column)
    assert two.train_metrics == one.train_metrics
    assert two.validation_metrics == one.validation_metrics
    assert lane_threads() == 0  # the run's helper stopped with it


def test_a_run_resumed_on_another_thread_count_ends_as_the_uninterrupted_one() -> None:
    X, Y = data()
    hp = hyperparameters(epochs=4)
    full = Trainer(X, Y, hp, threads=2).run()
    checkpoints: list[bytes] = []

    def after_two(p: Progress) -> bool:
        if p.record is not None and p.epoch == 2:
            checkpoints.append(p.trainer.checkpoint())
            return True
        return False

    Trainer(X, Y, hp, threads=2).run(after_two)
    resumed = Trainer.from_checkpoint(checkpoints[0], X, Y, threads=1).run()
    np.testing.assert_array_equal(resumed.model.params.theta, full.model.params.theta)


def test_a_stop_asked_inside_a_split_batch_returns_to_the_epochs_start() -> None:
    """The heartbeat runs on lane 0's thread between its pieces; a stop there
    leaves nothing half-done (lane 1 has finished before the step unwinds)."""
    X, Y = data(m=6000)
    hp = hyperparameters(batch_size=None, epochs=5)
    trainer = Trainer(X, Y, hp, threads=2, heartbeat_seconds=0.0)
    assert len(plan(5400, 70, 64, trainer._gradient.chunk, 8)[0]) > 1  # several pieces a lane
    beats: list[Progress] = []

    def stop_in_epoch_two(p: Progress) -> bool:
        beats.append(p)
        return p.record is None and p.epoch == 1  # a heartbeat inside epoch 2

    result = trainer.run(stop_in_epoch_two)
    assert result.stop_reason == "stopped"
    assert result.epochs_completed == 1
    one_epoch = Trainer(X, Y, hyperparameters(batch_size=None, epochs=1), threads=1).run()
    np.testing.assert_array_equal(result.model.params.theta, one_epoch.model.params.theta)
    assert lane_threads() == 0


def test_the_helper_raises_on_the_callers_thread_and_waits_for_both_lanes() -> None:
    lanes = Lanes(threads=2)
    done: list[str] = []

    def slow_lane() -> None:
        threading.Event().wait(0.05)
        done.append("lane 1")

    def failing_lane() -> None:
        raise ZeroDivisionError("lane 1")

    def failing_lane0() -> None:
        raise KeyError("lane 0")

    with pytest.raises(KeyError):
        lanes.run(failing_lane0, slow_lane)
    assert done == ["lane 1"]  # lane 1 was waited for before lane 0's error rose
    with pytest.raises(ZeroDivisionError, match="lane 1"):
        lanes.run(lambda: None, failing_lane)
    lanes.run(lambda: done.append("lane 0"), lambda: None)  # still serving
    assert done[-1] == "lane 0"
    assert lane_threads() == 1
    lanes.close()  # which waits for the helper to end
    assert lane_threads() == 0
    lanes.run(lambda: None, lambda: None)  # a later call starts a new helper
    assert lane_threads() == 1
    del lanes
    gc.collect()
    deadline = time.monotonic() + 10
    while lane_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lane_threads() == 0  # a dropped Lanes takes its helper with it


def test_a_forked_child_does_not_wait_on_its_parents_helper() -> None:
    lanes = Lanes(threads=2)
    lanes.run(lambda: None, lambda: None)
    lanes._pid = -1  # what a fork's child sees: the helper thread is not there
    ran: list[int] = []
    lanes.run(lambda: None, lambda: ran.append(threading.get_ident()))
    assert ran
    assert ran[0] != threading.get_ident()
    lanes.close()


def test_threads_must_be_one_or_two() -> None:
    with pytest.raises(ValueError, match="threads"):
        Lanes(threads=3)
    with pytest.raises(ValueError, match="threads"):
        Trainer(*data(m=50, n_x=3), hyperparameters(), threads=0)


def test_a_stop_in_lane_0_ends_lane_1_at_its_next_piece() -> None:
    """With two threads the heartbeat runs on lane 0's thread; once it raises, lane
    1 computes no further piece (the step is abandoned, and a stop is not held
    up by half a step on one core)."""
    n_x, n_h, b = 63, 64, 64 * 256  # 64 pieces of 256 columns: 32 a lane
    rng = np.random.default_rng(0)
    P = initialize(n_x, n_h, init="he", rng=rng)
    XTa = np.ones((b, n_x + 1))
    XTa[:, :n_x] = rng.standard_normal((b, n_x))
    Y = (rng.random((1, b)) > 0.5).astype(np.float64)
    lanes = Lanes(threads=2)
    gradient = BatchGradient(n_x, n_h, np.dtype(np.float64), "relu", 0.0, chunk=256, lanes=lanes)
    ranges = plan(b, n_x, n_h, 256, 8)
    assert [len(lane) for lane in ranges] == [32, 32]
    Z2 = np.full((1, b), np.nan)

    def stop() -> None:
        raise KeyError("stop")

    with pytest.raises(KeyError):
        gradient(P, XTa, Y, Z2, stop)
    done = [not np.isnan(Z2[0, start]) for start, _ in ranges[1]]
    assert not all(done)  # lane 1 did not run to its end
    assert done == sorted(done, reverse=True)  # it stopped, and stayed stopped
    lanes.close()


def test_a_signal_handlers_exception_waits_for_lane_1_and_leaves_the_lanes_in_step() -> None:
    lanes = Lanes(threads=2)
    finished: list[float] = []

    def slow_lane() -> None:
        time.sleep(0.3)
        finished.append(time.monotonic())

    def interrupt(*_: object) -> None:
        raise InterruptedError("a signal")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)  # while the caller waits for lane 1
        with pytest.raises(InterruptedError):
            lanes.run(lambda: None, slow_lane)
        raised = time.monotonic()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert finished
    assert finished[0] <= raised  # lane 1 was waited for
    lanes.run(lambda: None, slow_lane)  # the next run waits for its own lane 1
    assert len(finished) == 2
    lanes.close()


def test_a_lane_cannot_reenter_its_lanes() -> None:
    lanes = Lanes(threads=2)
    with pytest.raises(RuntimeError, match="its own Lanes"):
        lanes.run(lambda: lanes.run(lambda: None, lambda: None), lambda: None)
    with pytest.raises(RuntimeError, match="its own Lanes"):
        lanes.run(lanes.close, lambda: None)
    lanes.run(lambda: None, lambda: None)  # and the lanes still serve
    lanes.close()


def test_the_helper_keeps_no_job_so_a_dropped_lanes_is_collected() -> None:
    """A job holds its caller's buffers and, through them, the Lanes itself."""

    def step() -> weakref.ref[Lanes]:
        lanes = Lanes(threads=2)
        buffers = (lanes, np.zeros(1000))  # what lane 1 closes over
        lanes.run(lambda: None, lambda: buffers[1].fill(1))
        return weakref.ref(lanes)

    alive = step()
    gc.collect()
    deadline = time.monotonic() + 10
    while (alive() is not None or lane_threads()) and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert alive() is None
    assert lane_threads() == 0
