"""The `twolayer` client commands: train, predict, runs, datasets. They talk to
a server over HTTP (--url / $TWOLAYER_URL, --api-key / $TWOLAYER_API_KEY) and
never read the server's settings."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from app.client.cli_models import add_model_commands, models
from app.client.cli_sweeps import add_sweep_commands, sweep_command
from app.client.client import Client, Run
from app.client.errors import APIError, NotFoundError, TwolayerError
from app.db.models import RUN_STATUSES
from app.nn.hyperparameters import DEFAULTS, RULES
from app.nn.rules import Rule
from app.schemas.runs import RunHistory

COMMANDS = ("train", "predict", "runs", "datasets", "models", "sweep")
EXIT_FAILED = 1  # the run failed or was cancelled
EXIT_ERROR = 2  # the server refused the request, or could not be reached
EXIT_INTERRUPTED = 130


def nullable(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def add_hyperparameter(parser: argparse.ArgumentParser, name: str, rule: Rule) -> None:
    """One option per engine hyperparameter, from its rule (a new one is one edit
    in app/nn/hyperparameters.py); only the options given are sent."""
    flag = "--" + name.replace("_", "-")
    help_ = f"{rule.description} (default {DEFAULTS[name]})".replace("%", "%%")
    if rule.kind == "bool":
        parser.add_argument(
            flag,
            dest=name,
            action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS,
            help=help_,
        )
        return
    convert: Callable[[str], Any] = {"int": int, "float": float}.get(rule.kind, str)
    choices: list[Any] | None = None
    metavar = name.upper()
    if rule.choices:
        choices = [*rule.choices, *([None] if rule.nullable else [])]
        metavar = "{" + ",".join([*rule.choices, *(["none"] if rule.nullable else [])]) + "}"
    parser.add_argument(
        flag,
        dest=name,
        type=nullable(convert) if rule.nullable else convert,
        choices=choices,
        default=argparse.SUPPRESS,
        metavar=metavar,
        help=help_,
    )


def add_commands(commands: Any) -> None:
    """The client commands, added to `twolayer`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the server (default $TWOLAYER_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", help="an API key (default $TWOLAYER_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON, for scripts")

    train = commands.add_parser(
        "train",
        parents=[common],
        help="upload a CSV or Parquet file, train on it, show progress, print the metrics",
        description="Exits 0 when the run succeeds, 1 when it fails or is cancelled, 2 when "
        "the server refuses it. Ctrl-C asks whether to cancel the run; without a terminal "
        "on stdin, Ctrl-C (SIGINT) cancels it.",
    )
    train.add_argument("data", type=Path, help="a CSV file with a header row (or .parquet)")
    train.add_argument("--label-column", help="the labels' column (default: the last one)")
    train.add_argument("--name", help="the run's name (also the dataset's)")
    train.add_argument("--no-progress", action="store_true", help="no progress output")
    for name, rule in RULES.items():
        add_hyperparameter(train, name, rule)

    predict = commands.add_parser(
        "predict", parents=[common], help="probability and label for each row of a CSV file"
    )
    predict.add_argument("run", help="a run's id or name")
    predict.add_argument("data", type=Path, help="a CSV file with a header row")
    predict.add_argument("-o", "--output", type=Path, help="the CSV to write (default stdout)")
    predict.add_argument("--threshold", type=float, help="ŷ ≥ threshold is positive (0.5)")

    runs = commands.add_parser(
        "runs", help="list, show, cancel, rerun runs, or print a run's history"
    )
    run_actions = runs.add_subparsers(dest="action", required=True)
    listing = run_actions.add_parser("list", parents=[common], help="runs, newest first")
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--dataset-id")
    listing.add_argument("--name")
    for action, text in (
        ("show", "a run's state and metrics"),
        ("cancel", "cancel a run"),
        ("history", "a run's per-epoch figures, as CSV"),
    ):
        run_actions.add_parser(action, parents=[common], help=text).add_argument("run", help="id")
    rerun = run_actions.add_parser(
        "rerun", parents=[common], help="queue a run again: same data, hyperparameters, seed"
    )
    rerun.add_argument("run", help="id")
    rerun.add_argument("--name", help="the new run's name (default: the run's)")

    datasets = commands.add_parser("datasets", help="list or upload datasets")
    dataset_actions = datasets.add_subparsers(dest="action", required=True)
    dataset_actions.add_parser("list", parents=[common], help="datasets, newest first")
    upload = dataset_actions.add_parser(
        "upload", parents=[common], help="upload a CSV, Parquet or Arrow file"
    )
    upload.add_argument("data", type=Path)
    upload.add_argument("--label-column")
    upload.add_argument("--name")
    add_model_commands(commands, common)
    add_sweep_commands(commands, common, add_hyperparameter)


def run_command(args: argparse.Namespace) -> int:
    """A client command's exit code; an API error is printed with its problem fields."""
    try:
        with Client(args.url, args.api_key) as client:
            if args.command == "train":
                return train(client, args)
            if args.command == "predict":
                return predict(client, args)
            if args.command == "runs":
                return runs(client, args)
            if args.command == "models":
                return models(client, args)
            if args.command == "sweep":
                return sweep_command(client, args)
            return datasets(client, args)
    except APIError as exc:
        print(f"twolayer: {exc}", file=sys.stderr)
        for error in exc.errors if exc.errors and len(exc.errors) > 1 else []:
            where = ".".join(str(p) for p in error.get("loc", []) if p != "body")
            print(f"  {where}: {error.get('msg', '')}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `twolayer runs history RUN | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_ERROR
    except (TwolayerError, OSError, ValueError) as exc:
        print(f"twolayer: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # before a run was started, or while listing
        print("\ntwolayer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def dump(value: BaseModel | Sequence[BaseModel]) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return json.dumps([v.model_dump(mode="json") for v in value])


def metrics_lines(run: Run) -> Iterable[str]:
    yield f"run {run.id}: {run.status}"
    if run.error:
        yield f"error: {run.error}"
    if run.metrics is not None:
        for split, m in (("train", run.metrics.train), ("validation", run.metrics.validation)):
            if m is not None:
                figures = " ".join(
                    f"{k} {v:.4f}" for k, v in dataclasses.asdict(m).items() if v is not None
                )
                yield f"{split}: {figures}"
    for warning in run.warnings:
        yield f"warning: {warning}"


def train(client: Client, args: argparse.Namespace) -> int:
    hyperparameters = {name: getattr(args, name) for name in RULES if hasattr(args, name)}
    dataset = client.datasets.create(args.data, label_column=args.label_column, name=args.name)
    run = client.runs.create(dataset, args.name, **hyperparameters)
    print(f"run {run.id} queued on dataset {dataset.id}", file=sys.stderr)
    interrupted = False
    while True:
        try:
            run.wait(progress=not args.no_progress)
            break
        except KeyboardInterrupt:
            interrupted = True
            if not ask_cancel(run.id):
                print(f"following run {run.id} again", file=sys.stderr)
                continue
            try:
                run.cancel()
            except APIError as exc:  # it ended meanwhile
                print(f"twolayer: {exc}", file=sys.stderr)
            print(f"cancelling run {run.id}", file=sys.stderr)
    if args.json:
        print(run.read.model_dump_json())
    else:
        print("\n".join(metrics_lines(run)))
    if run.status == "succeeded":
        return 0
    return EXIT_INTERRUPTED if interrupted and run.status == "cancelled" else EXIT_FAILED


def ask_cancel(run_id: str) -> bool:
    """In a terminal, asks; without one (a script's SIGINT), the run is cancelled."""
    if not sys.stdin.isatty():
        print(f"\ninterrupted without a terminal: cancelling run {run_id}", file=sys.stderr)
        return True
    try:
        answer = input(f"\ncancel run {run_id}? [y/N] ")
    except (EOFError, KeyboardInterrupt):
        return True
    return answer.strip().lower() in ("y", "yes")


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        sample = f.read(64 * 1024)
        f.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(f, dialect)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty")
        rows = [row for row in reader if row]
    return header, rows


def find_run(client: Client, ref: str) -> Run:
    """The run of this id, else the newest of this name."""
    try:
        return client.runs.get(ref)
    except NotFoundError:
        for run in client.runs.list(name=ref, page_size=1):
            return run
        raise


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def predict(client: Client, args: argparse.Namespace) -> int:
    run = find_run(client, args.run)
    dataset = client.datasets.get(run.dataset_id)
    header, rows = read_csv(args.data)
    names = dataset.feature_names
    if all(n in header for n in names):
        columns = [header.index(n) for n in names]
    elif all(_is_number(cell) for cell in header):  # its first row would be lost
        raise ValueError(
            f"{args.data} has no header row (its first line is numbers): add one "
            f"naming its columns, e.g. {','.join(names)}"
        )
    elif len(header) == len(names):
        columns = list(range(len(header)))
    else:
        raise ValueError(
            f"{args.data} has columns {', '.join(header)}; the run wants {', '.join(names)}"
        )
    X = [[float(row[i]) for i in columns] for row in rows]
    result = run.predict(X, threshold=args.threshold)
    out: TextIO = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow([*header, "probability", "label"])
        for row, p, label in zip(rows, result.probabilities, result.labels.tolist(), strict=True):
            writer.writerow([*row, repr(float(p)), label])
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    return 0


def runs(client: Client, args: argparse.Namespace) -> int:
    if args.action == "list":
        found = list(
            client.runs.list(status=args.status, dataset_id=args.dataset_id, name=args.name)
        )
        if args.json:
            print(dump([r.read for r in found]))
        if not args.json:
            print("id\tstatus\tepoch\tname\ttrain cost")  # tab-separated, like the rows
        for run in [] if args.json else found:
            cost = run.metrics.train.cost if run.metrics else None
            print(
                f"{run.id}\t{run.status}\t{run.progress.epoch}/{run.progress.epochs}\t"
                f"{run.name or '-'}\t{'-' if cost is None else f'{cost:.4f}'}"
            )
        return 0
    if args.action == "rerun":  # the new run's id (or its read), as `datasets upload` prints
        again = client.runs.rerun(args.run, args.name)
        print(again.read.model_dump_json() if args.json else again.id)
        return 0
    run = client.runs.get(args.run)
    if args.action == "cancel":
        run.cancel()
    if args.action == "history":
        history = run.history()
        if args.json:
            print(history.model_dump_json())
            return 0
        columns = list(RunHistory.model_fields)
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        values = [getattr(history, c) or [None] * len(history.epoch) for c in columns]
        writer.writerows(zip(*values, strict=True))
        return 0
    print(run.read.model_dump_json() if args.json else "\n".join(metrics_lines(run)))
    return 0


def datasets(client: Client, args: argparse.Namespace) -> int:
    if args.action == "upload":
        dataset = client.datasets.create(args.data, label_column=args.label_column, name=args.name)
        print(dataset.model_dump_json() if args.json else dataset.id)
        return 0
    found = list(client.datasets.list())
    if args.json:
        print(dump(found))
        return 0
    print("id\tname\tsamples x features\tcreated")
    for d in found:
        print(f"{d.id}\t{d.name}\t{d.n_samples}x{d.n_features}\t{d.created_at:%Y-%m-%d %H:%M}")
    return 0
