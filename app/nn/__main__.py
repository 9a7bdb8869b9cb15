"""`python -m app.nn`: train a small network on generated moons and print its progress."""

from __future__ import annotations

import numpy as np

from app.nn.hyperparameters import Hyperparameters
from app.nn.samples import make_samples
from app.nn.training import Progress, Trainer


def main() -> None:
    X, Y = make_samples("moons", 400, noise=0.15, rng=np.random.default_rng(0))
    hp = Hyperparameters(hidden_units=8, learning_rate=0.3, epochs=300, batch_size=32, seed=1)

    def report(p: Progress) -> None:
        r = p.record
        if r is not None and (r.epoch % 50 == 0 or r.epoch == 1):
            print(
                f"epoch {r.epoch:4d}  train cost {r.train_cost:.4f}  "
                f"accuracy {r.train_accuracy:.3f}  validation cost {r.validation_cost:.4f}"
            )

    result = Trainer(X, Y, hp).run(report)
    print(f"stopped: {result.stop_reason} after {result.epochs_completed} epochs")
    print(f"train:      {result.train_metrics}")
    print(f"validation: {result.validation_metrics}")


if __name__ == "__main__":
    main()
