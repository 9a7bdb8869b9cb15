"""Where a run's weights are computed: the facts of this worker process that
decide the arithmetic (the project's, Python's and NumPy's versions, NumPy's
BLAS as built and as loaded, the machine), recorded on the run when an
attempt starts training. Nothing that identifies the host (no host name, no
path, no user) is kept.

An entry of `run.environments` is one distinct environment with the attempts
trained in it: a run resumed by another worker after a crash has one entry
per environment it ran in (one entry, all its attempts, when they all ran
alike). Two equal entries mean the same library builds on the same kind of
machine, which is what `np.array_equal` weights need (the seed and the data
being the same); they do not promise it across different entries.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info

import app


@functools.cache
def environment() -> dict[str, Any]:
    """This process's environment (computed once: none of it changes while it lives)."""
    config: dict[str, Any] = dict(np.show_config(mode="dicts"))
    simd = config.get("SIMD Extensions", {})
    return {
        "twolayer": app.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_simd": list(simd.get("found") or []),  # the CPU features NumPy dispatches to
        "blas": _blas(config),
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def _blas(config: dict[str, Any]) -> dict[str, Any]:
    """NumPy's BLAS as built (name, version, OpenBLAS's build configuration) and
    as loaded (threadpoolctl): the library, its version, the kernels it chose for
    this CPU and its thread count (paths left out)."""
    built = config.get("Build Dependencies", {}).get("blas", {})
    return {
        "name": built.get("name"),
        "version": built.get("version"),
        "config": built.get("openblas configuration"),
        "runtime": _blas_runtime(),
    }


def _blas_runtime() -> list[dict[str, Any]]:
    return [
        {
            "library": info.get("internal_api"),
            "version": info.get("version"),
            "architecture": info.get("architecture"),
            "threads": info.get("num_threads"),
        }
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]


def _cpu_model() -> str | None:
    """The CPU's model name where it is cheap to read (Linux), else the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model"):
                return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def recorded(environments: list[dict[str, Any]] | None, attempt: int) -> list[dict[str, Any]]:
    """`environments` with this attempt counted in this process's entry (a new
    entry for an environment not seen before). A run queued before Alembic 0011
    has null: its earlier attempts are not recorded."""
    mine = environment()
    entries = [dict(entry) for entry in environments or []]
    for entry in entries:
        if {k: v for k, v in entry.items() if k != "attempts"} == mine:
            if attempt not in entry["attempts"]:  # a release gives its attempt back
                entry["attempts"] = [*entry["attempts"], attempt]
            return entries
    return [*entries, {"attempts": [attempt], **mine}]
