"""`twolayer models …`: the model registry from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.client.client import Client


def add_model_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser(
        "models", help="the model registry: list, show, create, register, alias, delete"
    )
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="models, most recently changed first")
    actions.add_parser(
        "show", parents=[common], help="a model's versions and aliases"
    ).add_argument("name")
    create = actions.add_parser("create", parents=[common], help="a new, empty model")
    create.add_argument("name")
    create.add_argument("--description")
    register = actions.add_parser(
        "register", parents=[common], help="a succeeded run as the model's next version"
    )
    register.add_argument("name")
    register.add_argument("run", help="the run's id")
    register.add_argument("--description")
    register.add_argument("--create", action="store_true", help="make the model if missing")
    alias = actions.add_parser("alias", parents=[common], help="point an alias at a version")
    alias.add_argument("name")
    alias.add_argument("alias", help="champion, staging, …")
    alias.add_argument("version", type=int)
    delete = actions.add_parser(
        "delete", parents=[common], help="a model, or one of its versions or aliases"
    )
    delete.add_argument("name")
    which = delete.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="delete only this version")
    which.add_argument("--alias", help="delete only this alias")


def models(client: Client, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        found = list(client.models.list())
        if args.json:
            print(json.dumps([m.model_dump(mode="json") for m in found]))
            return 0
        print("name\tlatest\tversions\taliases\tupdated")
        for m in found:
            aliases = ",".join(f"{a}={v}" for a, v in m.aliases.items()) or "-"
            latest = "-" if m.latest_version is None else m.latest_version
            print(
                f"{m.name}\t{latest}\t{m.version_count}\t{aliases}\t{m.updated_at:%Y-%m-%d %H:%M}"
            )
        return 0
    if action == "create":
        made = client.models.create(args.name, description=args.description)
        print(made.model_dump_json() if args.json else made.name)
        return 0
    if action == "register":
        if args.create:
            client.models.ensure(args.name)
        version = client.models.register(args.name, args.run, description=args.description)
        print(version.model_dump_json() if args.json else f"{args.name}@{version.version}")
        return 0
    if action == "alias":
        moved = client.models.set_alias(args.name, args.alias, args.version)
        print(
            moved.model_dump_json() if args.json else f"{args.name}@{moved.alias} → {moved.version}"
        )
        return 0
    if action == "delete":
        if args.version is not None:
            client.models.delete_version(args.name, args.version)
        elif args.alias is not None:
            client.models.delete_alias(args.name, args.alias)
        else:
            client.models.delete(args.name)
        return 0
    model = client.models.get(args.name)
    if args.json:
        print(model.model_dump_json())
        return 0
    print(f"model {model.name}" + (f": {model.description}" if model.description else ""))
    print("version\trun\taliases\ttrain accuracy\tregistered")
    for v in model.versions:
        accuracy = (v.metrics or {}).get("train", {}).get("accuracy")
        shown = "-" if accuracy is None else f"{accuracy:.4f}"
        aliases = ",".join(v.aliases) or "-"
        print(f"{v.version}\t{v.run_id}\t{aliases}\t{shown}\t{v.created_at:%Y-%m-%d %H:%M}")
    return 0
