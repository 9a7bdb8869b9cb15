"""Run in a fresh process by the resume tests: continue a checkpoint, save the result.

    python -m tests.nn.resume_child DIR
reads DIR/checkpoint.npz, DIR/X.npy, DIR/Y.npy; writes DIR/result.npz.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from app.nn import Trainer


def main() -> None:
    d = Path(sys.argv[1])
    X = np.load(d / "X.npy", allow_pickle=False)
    Y = np.load(d / "Y.npy", allow_pickle=False)
    trainer = Trainer.from_checkpoint((d / "checkpoint.npz").read_bytes(), X, Y)
    result = trainer.run()
    cols = result.history.columns()
    savez: Any = np.savez  # NumPy's stubs mistype **arrays
    savez(
        d / "result.npz",
        theta=result.model.params.theta,
        epochs_completed=result.epochs_completed,
        stop_reason=np.array(result.stop_reason),
        **{f"history.{k}": v for k, v in cols.items()},
    )


if __name__ == "__main__":
    main()
