"""client.sweeps: start a sweep, wait for it, its table; cancel; errors as exceptions."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from app.client import Client
from app.client.errors import ConflictError, ValidationError
from tests.client.conftest import write_csv


def test_a_sweep_from_the_client(asgi: Client, tmp_path: Path) -> None:
    dataset = asgi.datasets.create(write_csv(tmp_path / "xor.csv"), label_column="y")
    sweep = asgi.sweeps.create(
        dataset,
        search={"hidden_units": [2, 4]},
        base={"epochs": 5},
        strategy="grid",
        metric="train.cost",
        seed=1,
        name="from the client",
    )
    assert sweep.trials_planned == 2
    assert sweep.direction == "minimize"  # a cost, by default
    lines = io.StringIO()
    sweep.wait(timeout=60, poll=0.1, stream=lines)
    assert sweep.ended
    assert sweep.status == "succeeded"
    assert lines.getvalue().count("complete, train.cost") == 2
    table = sweep.table()
    assert [row["number"] for row in table] == [0, 1]
    assert sorted(row["hidden_units"] for row in table) == [2, 4]
    assert all(row["train.cost"] == t.value for row, t in zip(table, sweep.trials, strict=True))
    assert sweep.best is not None
    assert sweep.best.value == min(row["train.cost"] for row in table)
    out = io.StringIO()
    sweep.print_table(console=Console(file=out, width=120))
    assert "from the client" in out.getvalue()
    assert "★" in out.getvalue()
    assert [s.id for s in asgi.sweeps.list()] == [sweep.id]
    assert asgi.sweeps.get(sweep.id).trials == sweep.trials
    with pytest.raises(ConflictError):
        sweep.cancel()
    with pytest.raises(ValidationError, match="no such hyperparameter"):
        asgi.sweeps.create(dataset, search={"hidden": [1]})
