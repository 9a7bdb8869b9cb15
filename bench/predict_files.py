"""Batch prediction from files against `twolayer serve` (auth off, SQLite).

    python bench/predict_files.py [--rows 100000]

For each file (CSV at full precision, with an id column passed through, and
the same rows as Parquet): rows × 2 and rows × 30 features, the wall-clock
seconds of POST /predict/csv (upload, both passes and the streamed answer,
read to its end), rows per second, the API process's peak RSS growth during
it (VmHWM, reset before each case) and the slowest GET /health answered
meanwhile. The server runs this checkout's code (PYTHONPATH).
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import tempfile
from pathlib import Path

import httpx2 as httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from large_bodies import measure, trained_run  # bench/large_bodies.py, beside this file

from tests.helpers import start_serve

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024


def rows_file(rows: int, n_features: int, kind: str) -> bytes:
    """An id column, then the features x0 … (what POST /datasets names them), reversed."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(rows, n_features))
    columns = {"id": pa.array(np.arange(rows))}
    columns |= {f"x{j}": pa.array(X[:, j]) for j in reversed(range(n_features))}
    table = pa.table(columns)
    sink = io.BytesIO()
    if kind == "csv":
        pacsv.write_csv(table, sink)
    else:
        pq.write_table(table, sink)
    return sink.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    rows = parser.parse_args().rows
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        env = {
            "TWOLAYER_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
            "PYTHONPATH": str(ROOT),
        }
        server, base = start_serve(workdir, env)
        try:
            with httpx.Client(base_url=base, timeout=600) as client:
                runs = {n: trained_run(client, n, 16) for n in (2, 30)}
                for n, run_id in runs.items():  # warm-up: PyArrow's and BLAS's buffers, the cache
                    warm = rows_file(10_000, n, "csv")
                    client.post(f"/predict/csv?run_id={run_id}", content=warm).raise_for_status()
            print(
                "| file | MiB | status | seconds | rows/s | answer MiB | peak RSS growth MiB "
                "| slowest /health s |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for n_features in (2, 30):
                for kind in ("csv", "parquet"):
                    body = rows_file(rows, n_features, kind)
                    media = "text/csv" if kind == "csv" else "application/vnd.apache.parquet"

                    def request(body: bytes = body, media: str = media, n: int = n_features) -> int:
                        size = 0
                        with httpx.stream(
                            "POST",
                            f"{base}/predict/csv?run_id={runs[n]}",
                            content=body,
                            headers={"content-type": media},
                            timeout=600,
                        ) as response:
                            response.raise_for_status()
                            for chunk in response.iter_bytes():
                                size += len(chunk)
                        return size

                    figures, answered = measure(server.pid, base, request)
                    print(
                        f"| {rows} × {n_features} {kind} | {len(body) / MiB:.1f} | 200 | "
                        f"{figures['seconds']:.2f} | {rows / figures['seconds']:,.0f} | "
                        f"{answered / MiB:.1f} | {figures['rss_growth_mib']:.0f} | "
                        f"{figures['health']:.3f} |"
                    )
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


if __name__ == "__main__":
    main()
