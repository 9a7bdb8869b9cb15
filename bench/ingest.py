"""Uploads at the speed of Arrow: a CSV's parse and its whole upload, against
pandas and the stdlib csv module on the same file, in one run.

    python bench/ingest.py [--sizes 200000x50,1000000x50] [--no-stdlib]

For each size a CSV is written (features as pandas writes them with
float_format="%.8g", a 0/1 label column last) and then, each in a fresh
process so that its peak memory (VmHWM) is its own:
- pandas: `pandas.read_csv` and the features as a float64 array;
- stdlib: `csv.reader` and `float()` per cell into a list of rows, then an
  array (the service's parser before this issue);
- ingest: `app.services.ingest.read_file` (the service's parse step alone);
- receive: the same POST with an empty name, refused (422) once the body is
  received and spooled: HTTP and spooling alone;
- store: the float64 rows, already in memory, written as a dataset (the
  service's store step alone, in a fresh process);
- upload: `twolayer serve` (SQLite, local executor) and one POST
  /datasets/upload of the file from disk with httpx: HTTP, spooling,
  parsing, storing. Its time is the request's; its memory the server
  process's VmHWM growth over its RSS before the request.
With --postgres URL, store and upload again with that database (migrated
first; its datasets are left there).
MB/s are of the file's bytes. `x pandas` is the time over pandas' parse time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.migrate import upgrade  # noqa: E402
from tests.helpers import start_serve  # noqa: E402

# (imports, the timed parse): imports are neither timed nor counted in the peak
PARSERS = {
    "pandas": (
        "import pandas as pd",
        """
X = pd.read_csv(PATH).iloc[:, :-1].to_numpy(dtype="float64")
""",
    ),
    "stdlib": (
        "import csv, numpy as np",
        """
with open(PATH, newline="") as f:
    reader = csv.reader(f)
    next(reader)
    rows = [[float(c) for c in r[:-1]] for r in reader]
X = np.asarray(rows)
""",
    ),
    "ingest": (
        "from app.core.settings import Settings\nfrom app.services.ingest import Choice, read_file",
        """
with open(PATH, "rb") as f:
    parsed = read_file(file=f, settings=Settings(), choice=Choice())
    for rows in parsed.blocks(20480):
        pass
""",
    ),
}
MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
PATH = {small!r}
{imports}
{code}
PATH = {path!r}
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
before = hwm()
t = time.perf_counter()
{code}
print(json.dumps({{"seconds": time.perf_counter() - t, "hwm_kib": hwm(), "before_kib": before}}))
"""


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise KeyError(field)


def write_csv(path: Path, m: int, n_x: int) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(m, n_x)), columns=[f"f{i}" for i in range(n_x)])
    frame["label"] = rng.integers(0, 2, m)
    frame.to_csv(path, index=False, float_format="%.8g")


def small_csv(path: Path) -> Path:
    """A few rows: parsed (and uploaded) once first, so that what a parser does
    once per process (imports, first allocations) is not in its figures."""
    small = path.with_name("warm-up.csv")
    small.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    return small


def parse(name: str, path: Path) -> dict[str, float]:
    imports, code = PARSERS[name]
    small = small_csv(path)
    code = MEASURE.format(
        root=str(ROOT), small=str(small), path=str(path), imports=imports, code=code
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


STORE = """
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, pandas as pd
from app.core.settings import Settings
from app.db.migrate import upgrade
from app.db.session import Database
from app.services.datasets import _in_memory, _store
X = pd.read_csv({path!r}).iloc[:, :-1].to_numpy(dtype="float64")
labels = [0, 1] * (X.shape[0] // 2) + [0] * (X.shape[0] % 2)
settings = Settings(database_url={url!r}, max_stored_bytes_per_owner=2**40)
upgrade(settings.database_url)
db = Database(settings.database_url)
data = _in_memory(X, labels, None)
t = time.perf_counter()
_store(db=db, settings=settings, owner="bench", name="stored", data=data)
print(json.dumps({{"seconds": time.perf_counter() - t, "hwm_kib": 0, "before_kib": 0}}))
"""


def store(path: Path, url: str) -> dict[str, float]:
    """The store step alone: the float64 rows (already in memory) written as a
    dataset's chunks, in a fresh process."""
    code = STORE.format(root=str(ROOT), path=str(path), url=url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def upload(path: Path, workdir: Path, url: str, *, refused: bool = False) -> dict[str, float]:
    """One POST /datasets/upload of the file to a fresh `twolayer serve` (after a
    warm-up upload). `refused`: with an empty name, which the form's check
    refuses (422) once the body is received and spooled: HTTP and spooling alone."""
    if not url.startswith("sqlite"):
        upgrade(url)
    env = {"TWOLAYER_DATABASE_URL": url, "TWOLAYER_MAX_UPLOAD_BYTES": str(2 * 1024**3)}
    server, base = start_serve(workdir, env)
    try:
        with small_csv(path).open("rb") as f:
            httpx.post(f"{base}/datasets/upload", files={"file": f}, data={"name": "warm-up"})
        before = status_kib(server.pid, "VmRSS")
        with path.open("rb") as f:
            t = time.perf_counter()
            response = httpx.post(
                f"{base}/datasets/upload",
                files={"file": (path.name, f, "text/csv")},
                data={"name": "" if refused else path.stem},
                timeout=600,
            )
            seconds = time.perf_counter() - t
        assert response.status_code == (422 if refused else 201), response.text
        return {
            "seconds": seconds,
            "hwm_kib": status_kib(server.pid, "VmHWM"),
            "before_kib": before,
        }
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="200000x50,1000000x50")
    parser.add_argument("--no-stdlib", action="store_true", help="skip the slow stdlib parser")
    parser.add_argument("--postgres", metavar="URL", help="also store and upload to this database")
    args = parser.parse_args()
    print(f"{'file':>22} {'step':>16} {'seconds':>8} {'MB/s':>7} {'x pandas':>8} "
          f"{'peak MB':>8} {'x data':>7}")  # fmt: skip
    for size in args.sizes.split(","):
        m, n_x = (int(v) for v in size.split("x"))
        data_mb = m * n_x * 8 / 1e6
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{m}x{n_x}.csv"
            write_csv(path, m, n_x)
            file_mb = path.stat().st_size / 1e6
            names = ["pandas", *([] if args.no_stdlib else ["stdlib"]), "ingest"]
            results = {name: parse(name, path) for name in names}
            databases = {"": None, " (PostgreSQL)": args.postgres}
            for i, (suffix, url) in enumerate(databases.items()):
                if suffix and not url:
                    continue
                work = Path(tmp) / f"serve{i}"
                work.mkdir()
                url = url or f"sqlite:///{work / 'bench.db'}"
                if not suffix:
                    results["receive"] = upload(path, work, url, refused=True)
                results["store" + suffix] = store(path, url)
                results["upload" + suffix] = upload(path, work, url)
            base = results["pandas"]["seconds"]
            for name, r in results.items():
                grown = (r["hwm_kib"] - r["before_kib"]) / 1024 * 1.048576
                peak = f"{grown:8.0f} {grown / data_mb:7.2f}" if r["hwm_kib"] else ""
                print(
                    f"{f'{size} ({file_mb:.0f} MB)':>22} {name:>16} {r['seconds']:8.2f} "
                    f"{file_mb / r['seconds']:7.0f} {r['seconds'] / base:8.2f} {peak}"
                )
        print(f"(float64 data: {data_mb:.0f} MB; peak = VmHWM growth during the step)")
    print(f"cpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
