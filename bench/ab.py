"""A/B: the engine's epoch time in two source trees, interleaved in the same run.

    python bench/ab.py BEFORE_TREE AFTER_TREE [--configs abcd] [--dtypes float64] [--rounds 7]

Use it for a change that must not cost speed: check out the commit before it
(`git worktree add /tmp/before HEAD~1`) and compare. Each measurement is a
fresh process that imports `app.nn` from one tree and times one epoch of
`bench/engine.py`'s config as engine.py does, by the marginal cost of an
epoch, (t(E₂ epochs) - t(E₁ epochs)) / (E₂ - E₁) after an untimed warm-up
run, with each t the fastest of `--repeat` runs (other tenants only ever
slow a run down); each round measures every config in
both trees, in alternating order, and the ratio reported is the median of
the rounds' ratios (time after / time before: below 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import engine  # bench/engine.py, beside this file

CHILD = """
import sys
tree = sys.argv[1]
sys.path[:0] = [tree, tree + "/bench"]
import engine  # the tree's own: it imports that tree's app.nn
import app.nn
assert app.nn.__file__.startswith(tree), app.nn.__file__
cfg = engine.CONFIGS[sys.argv[2]]
X, y = engine.make_data(cfg, engine.np.dtype(sys.argv[3]))
run = engine.run_twolayer(cfg, X, y, sys.argv[3])
e1, e2 = cfg.epochs
run(e1)  # untimed: the allocator as the timed runs find it (engine.marginal_epoch)
t1, t2 = [], []
for _ in range(int(sys.argv[4])):
    t1.append(engine.timed(lambda: run(e1)))
    t2.append(engine.timed(lambda: run(e2)))
print((min(t2) - min(t1)) / (e2 - e1))
"""


def epoch_seconds(tree: Path, config: str, dtype: str, repeat: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), config, dtype, str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--configs", default="abcd")
    parser.add_argument("--dtypes", default="float64")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--repeat", type=int, default=3, help="measurements per process; the fastest counts"
    )
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    configs = [c for c in args.configs if c in engine.CONFIGS]
    dtypes = args.dtypes.split(",")
    times: dict[tuple[str, str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    print(engine.describe_machine())
    for r in range(args.rounds):
        for config in configs:
            for dtype in dtypes:
                order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
                got = {
                    name: epoch_seconds(trees[name], config, dtype, args.repeat) for name in order
                }
                for name, seconds in got.items():
                    times.setdefault((config, dtype, name), []).append(seconds)
                ratios.setdefault((config, dtype), []).append(got["after"] / got["before"])
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    print(f"\nmedians over {args.rounds} interleaved rounds\n")
    print("| config | dtype | before ms/epoch | after ms/epoch | after / before | range |")
    print("|---|---|---|---|---|---|")
    for config in configs:
        for dtype in dtypes:
            before = 1e3 * statistics.median(times[(config, dtype, "before")])
            after = 1e3 * statistics.median(times[(config, dtype, "after")])
            rs = ratios[(config, dtype)]
            print(
                f"| {config} | {dtype} | {before:.3f} | {after:.3f} "
                f"| {statistics.median(rs):.3f} | {min(rs):.2f}–{max(rs):.2f} |"
            )


if __name__ == "__main__":
    main()
