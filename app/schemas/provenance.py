"""A run's reproducibility record, as its read shows it, and the rerun's request."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.db.models import Run
from app.schemas.common import Name, Schema


class BlasLibraryRead(BaseModel):
    """A BLAS library as loaded in the worker (threadpoolctl's view of it)."""

    library: str | None = Field(description="its implementation: openblas, mkl, blis, …")
    version: str | None = Field(description="its version")
    architecture: str | None = Field(
        description="the kernels it chose for this CPU (OpenBLAS's core: Haswell, SkylakeX, …)"
    )
    threads: int | None = Field(description="the threads it computes with")


class BlasRead(BaseModel):
    """NumPy's BLAS, which computes the products of training."""

    name: str | None = Field(description="as NumPy was built with it (numpy.show_config)")
    version: str | None = Field(description="its version, as built")
    config: str | None = Field(description="OpenBLAS's build configuration, if it is OpenBLAS")
    runtime: list[BlasLibraryRead] | None = Field(
        description="as loaded: library, version, kernels, threads (a worker holds its BLAS "
        "to one thread); null in records written by workers without threadpoolctl"
    )


class EnvironmentRead(BaseModel):
    """One environment a run's weights were computed in (nothing identifying: no
    host name, path or user)."""

    attempts: list[int] = Field(description="the run's attempts trained in it (1-based)")
    twolayer: str = Field(description="this project's version")
    python: str = Field(description="Python's version")
    numpy: str = Field(description="NumPy's version")
    numpy_simd: list[str] = Field(description="the CPU features NumPy dispatches to")
    blas: BlasRead = Field(description="NumPy's BLAS")
    machine: str = Field(description="the architecture, platform.machine(): x86_64, aarch64, …")
    system: str = Field(description="the operating system, platform.system()")
    cpu: str | None = Field(description="the CPU's model, where it is cheap to read")
    cpu_count: int | None = Field(description="the CPUs the worker's host has")


class ReproducibilityRead(BaseModel):
    """What the run needs to be trained again to the same weights: POST
    /runs/{id}/rerun uses it. On the same environment (an entry of
    `environments` equal in every field) the weights are `np.array_equal`."""

    dataset_sha256: str = Field(description="the sha256 of the dataset it trains on")
    seed: int | None = Field(description="the resolved seed (hyperparameters.seed)")
    init_from_run_id: str | None = Field(
        description="the run whose weights it started from, as given: kept once that run "
        "is deleted (init_from_run_id is then null, and a rerun is refused)"
    )
    environments: list[EnvironmentRead] | None = Field(
        description="where its weights were computed: one entry per distinct worker "
        "environment, with the attempts trained in it (a run resumed elsewhere after a "
        "lost worker has several); empty until a worker starts it; null for runs trained "
        "before these records existed"
    )

    @classmethod
    def of(cls, run: Run) -> ReproducibilityRead:
        return cls.model_validate(
            {
                "dataset_sha256": run.dataset_sha256,
                "seed": run.hyperparameters.get("seed"),
                "init_from_run_id": run.warm_start_run_id,
                "environments": run.environments,
            }
        )


class RunRerun(Schema):
    """A rerun: the same dataset, resolved hyperparameters (seed included) and
    warm-start source as the run's."""

    name: Name | None = Field(None, description="the new run's name; by default the run's own")


EXAMPLE_REPRODUCIBILITY: Any = {
    # the tour's dataset
    "dataset_sha256": "e89310d92b4e8ea926d398ee2f12d33c40a520bcf371995811b665a6f2f19d75",
    "seed": 0,
    "init_from_run_id": None,
    "environments": [
        {
            "attempts": [1],
            "twolayer": "0.2.0",
            "python": "3.11.7",
            "numpy": "2.4.6",
            "numpy_simd": ["X86_V3", "X86_V4", "AVX512_ICL"],
            "blas": {
                "name": "scipy-openblas",
                "version": "0.3.31.188.0",
                "config": "OpenBLAS 0.3.31.188.0 USE64BITINT DYNAMIC_ARCH NO_AFFINITY Haswell "
                "MAX_THREADS=64",
                "runtime": None,
            },
            "machine": "x86_64",
            "system": "Linux",
            "cpu": "AMD EPYC",
            "cpu_count": 2,
        }
    ],
}
