"""`twolayer sweep …`: hyperparameter sweeps from the command line; `start` waits
and prints the trials as a table at the end."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

from app.client.client import Client
from app.client.errors import ConflictError
from app.client.sweeps import Sweep
from app.nn.hyperparameters import RULES
from app.nn.rules import Rule
from app.schemas.sweeps import SweepRead
from app.services.sweep_spec import METRICS
from app.worker.study import STRATEGIES

SEARCH_HELP = (
    "NAME=V1,V2,… (values) or NAME=LOW:HIGH[:log] (a range); repeat for each "
    "searched hyperparameter, e.g. --search hidden_units=1,2,3,4,5,20,50"
)


def add_sweep_commands(
    commands: Any,
    common: argparse.ArgumentParser,
    add_hyperparameter: Callable[[argparse.ArgumentParser, str, Rule], None],
) -> None:
    """`add_hyperparameter`: the train command's options (app.client.cli), for the base."""
    sweep = commands.add_parser("sweep", help="hyperparameter sweeps: start, show, list, cancel")
    actions = sweep.add_subparsers(dest="action", required=True)
    start = actions.add_parser(
        "start",
        parents=[common],
        help="start a sweep, wait for it, print its trials as a table",
        description="Every hyperparameter option sets the base of every trial. Exits 0 "
        "when the sweep succeeds, 1 when it fails or is cancelled, 2 when refused.",
    )
    start.add_argument("dataset", help="the dataset's id, or its name (your newest of it)")
    start.add_argument("--search", action="append", required=True, help=SEARCH_HELP)
    start.add_argument("--strategy", choices=STRATEGIES, default="tpe")
    start.add_argument("--trials", type=int, help="trials in all (default: the grid, or 10)")
    start.add_argument("--metric", choices=METRICS, default="validation.roc_auc")
    start.add_argument("--direction", choices=("maximize", "minimize"))
    start.add_argument("--parallel", type=int, default=2, help="trials at once (2)")
    start.add_argument("--sweep-seed", type=int, help="the sweep's seed: the same trials again")
    start.add_argument("--prune", action="store_true", help="Optuna's median pruner")
    start.add_argument("--sweep-name", help="the sweep's name")
    start.add_argument("--no-wait", action="store_true", help="print the sweep's id and return")
    for name, rule in RULES.items():
        add_hyperparameter(start, name, rule)
    for action, text in (("show", "a sweep's trials as a table"), ("cancel", "cancel a sweep")):
        actions.add_parser(action, parents=[common], help=text).add_argument("sweep", help="id")
    actions.add_parser("list", parents=[common], help="sweeps, newest first")


def parse_search(items: list[str]) -> dict[str, Any]:
    """--search options as the request's search; ValueError naming the bad one."""
    search: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        rule = RULES.get(name)
        if not sep or rule is None:
            raise ValueError(f"--search {item!r}: expected NAME=VALUES with a hyperparameter NAME")
        if ":" in text and rule.kind in ("int", "float"):
            low, high, *log = text.split(":")
            if log not in ([], ["log"]):
                raise ValueError(f"--search {item!r}: a range is LOW:HIGH or LOW:HIGH:log")
            kind = int if rule.kind == "int" else float
            search[name] = {"low": kind(low), "high": kind(high), "log": bool(log)}
        else:
            search[name] = [_value(rule.kind, v) for v in text.split(",")]
    return search


def _is_uuid(text: str) -> bool:
    """The API's ids are UUIDs: anything else given for a dataset is its name."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _value(kind: str, text: str) -> Any:
    if text.lower() in ("none", "null"):
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    return text


def sweep_command(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = list(client.sweeps.list())
        if args.json:
            print(json.dumps([s.model_dump(mode="json") for s in found]))
            return 0
        print("id\tname\tstatus\ttrials\tbest\tcreated")
        for s in found:
            best = "-" if s.best is None or s.best.value is None else f"{s.best.value:.4f}"
            ended = sum(n for state, n in s.counts.items() if state != "pending")
            when = f"{s.created_at:%Y-%m-%d %H:%M}"
            print(
                f"{s.id}\t{s.name or '-'}\t{s.status}\t{ended}/{s.trials_planned}\t{best}\t{when}"
            )
        return 0
    if args.action == "cancel":
        cancelled = client.sweeps.get(args.sweep).cancel()  # ConflictError once ended
        print(cancelled.model_dump_json() if args.json else f"sweep {cancelled.id}: cancelled")
        return 0
    if args.action == "show":
        return _show(client.sweeps.get(args.sweep), args)
    base = {name: getattr(args, name) for name in RULES if hasattr(args, name)}
    given = {"dataset_id": args.dataset} if _is_uuid(args.dataset) else {}
    sweep = client.sweeps.create(
        given.get("dataset_id"),
        dataset_name=None if given else args.dataset,
        search=parse_search(args.search),
        base=base,
        strategy=args.strategy,
        trials=args.trials,
        metric=args.metric,
        direction=args.direction,
        parallel=args.parallel,
        seed=args.sweep_seed,
        pruner={} if args.prune else None,
        name=args.sweep_name,
    )
    if args.no_wait:
        print(sweep.model_dump_json() if args.json else sweep.id)
        return 0
    print(f"sweep {sweep.id}: {sweep.trials_planned} trials", file=sys.stderr)
    try:
        sweep.wait(poll=0.5, stream=None if args.json else sys.stderr)
    except KeyboardInterrupt:
        with contextlib.suppress(ConflictError):  # it may have ended meanwhile
            sweep.cancel()
        print(f"\ntwolayer: sweep {sweep.id} cancelled", file=sys.stderr)
        return 130
    return _show(sweep, args)


def _show(sweep: Sweep, args: argparse.Namespace) -> int:
    if args.json:
        print(SweepRead.model_validate(dict(sweep)).model_dump_json())
    else:
        sweep.print_table()
        if sweep.best is not None:
            params = ", ".join(f"{k}={v}" for k, v in sweep.best.params.items())
            print(f"best: trial {sweep.best.number} ({params}), {sweep.metric} {sweep.best.value}")
    return 0 if sweep.status in ("succeeded", "running") else 1
