"""A large upload in a real server process: its peak memory (VmHWM) stays within
2× the float64 data it stores plus a fixed 50 MB, and what it stored comes back
exactly."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tests.helpers import start_serve

M, N_X = 400_000, 20  # 64 MB of float64


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise KeyError(field)


def test_a_large_csv_upload_peaks_within_twice_its_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(M, N_X))
    columns = {f"f{j}": X[:, j] for j in range(N_X)}
    table = pa.table({**columns, "label": rng.integers(0, 2, M)})
    path = tmp_path / "big.csv"
    pacsv.write_csv(table, str(path))  # full precision: ~370 bytes a row
    env = {"TWOLAYER_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    server, base = start_serve(tmp_path, env)
    try:
        small = tmp_path / "small.csv"  # the first upload warms PyArrow's pools up
        small.write_bytes(b"a,label\n1,0\n2,1\n")
        with small.open("rb") as f:
            response = httpx.post(f"{base}/datasets/upload", files={"file": f}, data={"name": "s"})
        assert response.status_code == 201, response.text
        before = status_kib(server.pid, "VmRSS")
        with path.open("rb") as f:
            response = httpx.post(
                f"{base}/datasets/upload", files={"file": f}, data={"name": "big"}, timeout=120
            )
        assert response.status_code == 201, response.text
        grown_mb = (status_kib(server.pid, "VmHWM") - before) * 1024 / 1e6
        data_mb = M * N_X * 8 / 1e6
        size_mb = path.stat().st_size / 1e6
        print(f"file {size_mb:.0f} MB, data {data_mb:.0f} MB, peak +{grown_mb:.0f} MB")
        assert grown_mb <= 2 * data_mb + 50, f"peak grew {grown_mb:.0f} MB for {data_mb:.0f} MB"
        dataset = response.json()
        assert (dataset["n_samples"], dataset["n_features"]) == (M, N_X)
        back = httpx.get(f"{base}/datasets/{dataset['id']}/data.parquet", timeout=60)
        stored = pq.read_table(io.BytesIO(back.content))
        assert np.array_equal(np.column_stack([c.to_numpy() for c in stored.columns[:N_X]]), X)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)
