"""The model registry: an owner's named models, their versions (succeeded runs,
fixed at registration) and aliases, and the references that name a version
("name", "name@3", "name@champion", "name@latest").

Every change to a model (a version, an alias, its description, its deletion)
first locks the model's row (FOR UPDATE; SQLite's write transactions are
serial anyway), so changes to one model happen one after the other: version
numbers are never given twice, an alias moves in one transaction. A reference
is resolved in the database at every use: an alias moved by any API process
takes effect on the next request everywhere, and no process keeps a stale map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import (
    Invalid,
    ModelExists,
    NotFound,
    RunHasNoModel,
    RunNotSucceeded,
    VersionHasAlias,
)
from app.core.ids import new_id
from app.core.text import ALIAS, LATEST, MODEL_REF
from app.db.base import utcnow
from app.db.models import Dataset, ModelAlias, ModelVersion, RegisteredModel, Run, StoredModel
from app.db.session import Database
from app.services.ownership import owned

_REF = re.compile(MODEL_REF)
_ALIAS = re.compile(rf"^{ALIAS}$")


@dataclass(frozen=True)
class ModelView:
    model: RegisteredModel
    versions: list[ModelVersion]  # newest first
    aliases: dict[str, int]


@dataclass(frozen=True)
class Resolved:
    """What a reference names: the version, and the run whose weights it is."""

    name: str
    version: int
    run_id: str


# ------------------------------------------------------------ models


def _model(session: Session, owner: str, name: str, *, lock: bool = False) -> RegisteredModel:
    query = select(RegisteredModel).where(
        RegisteredModel.owner == owner, RegisteredModel.name == name
    )
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise NotFound(f"no model is named {name!r}")
    return row


def _view(session: Session, model: RegisteredModel) -> ModelView:
    versions = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.model_id == model.id)
        .order_by(ModelVersion.version.desc())
    ).all()
    aliases = session.execute(
        select(ModelAlias.alias, ModelAlias.version)
        .where(ModelAlias.model_id == model.id)
        .order_by(ModelAlias.alias)
    ).all()
    return ModelView(model, list(versions), {str(a): int(v) for a, v in aliases})


def create_model(
    *,
    db: Database,
    owner: str,
    name: str,
    description: str | None,
    exist_ok: bool = False,
    replace: bool = True,
) -> tuple[ModelView, bool]:
    """A new model of this name (ModelExists if there is one), or with `exist_ok`
    the model of this name, its description replaced unless `replace` is false
    (a PUT without one). (view, created)."""
    try:
        with db.write() as session:
            found = session.scalars(
                select(RegisteredModel)
                .where(RegisteredModel.owner == owner, RegisteredModel.name == name)
                .with_for_update()
            ).one_or_none()
            if found is not None:
                if not exist_ok:
                    raise ModelExists(f"a model named {name!r} exists already")
                if replace and found.description != description:
                    found.description = description
                    found.updated_at = utcnow()
                    session.flush()
                return _view(session, found), False
            now = utcnow()
            model = RegisteredModel(
                id=new_id(),
                owner=owner,
                name=name,
                description=description,
                versions_made=0,
                created_at=now,
                updated_at=now,
            )
            session.add(model)
            session.flush()
            return ModelView(model, [], {}), True
    except IntegrityError:  # a concurrent create of the same name won
        if not exist_ok:
            raise ModelExists(f"a model named {name!r} exists already") from None
        return create_model(
            db=db, owner=owner, name=name, description=description, exist_ok=True, replace=replace
        )


def get_model(*, db: Database, owner: str, name: str) -> ModelView:
    with db.read() as session:
        return _view(session, _model(session, owner, name))


def list_models(
    *, db: Database, owner: str, limit: int, offset: int
) -> tuple[list[ModelView], int]:
    """The owner's models, most recently changed first."""
    query = select(RegisteredModel).where(RegisteredModel.owner == owner)
    with db.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        models = session.scalars(
            query.order_by(RegisteredModel.updated_at.desc(), RegisteredModel.id)
            .limit(limit)
            .offset(offset)
        ).all()
        return [_view(session, m) for m in models], total


def delete_model(*, db: Database, owner: str, name: str) -> None:
    """The model, its versions and its aliases; the runs stay."""
    with db.write() as session:
        session.delete(_model(session, owner, name, lock=True))


# ------------------------------------------------------------ versions


def register_version(
    *, db: Database, owner: str, name: str, run_id: str, description: str | None
) -> ModelVersion:
    """Version N+1 of the model: a succeeded run of the owner's, registered with
    its dataset's feature names, label and classes and the run's figures."""
    with db.write() as session:
        model = _model(session, owner, name, lock=True)
        run = owned(session, Run, run_id, owner, "run", hold=True)
        if run.status != "succeeded":
            raise RunNotSucceeded(f"run {run_id} has not succeeded ({run.status})")
        if session.scalar(select(StoredModel.epoch).where(StoredModel.run_id == run_id)) is None:
            raise RunHasNoModel(f"run {run_id} has no weights")
        dataset = session.get_one(Dataset, run.dataset_id)
        model.versions_made += 1
        model.updated_at = now = utcnow()
        version = ModelVersion(
            model_id=model.id,
            version=model.versions_made,
            run_id=run.id,
            description=description,
            dataset_id=dataset.id,
            feature_names=list(dataset.feature_names),
            label_name=dataset.label_name,
            classes=list(dataset.classes),
            standardized=bool(run.hyperparameters.get("standardize", False)),
            hyperparameters=dict(run.hyperparameters),
            metrics=run.metrics,
            created_at=now,
        )
        session.add(version)
        session.flush()
        return version


def _version(session: Session, model: RegisteredModel, version: int) -> ModelVersion:
    row = session.get(ModelVersion, (model.id, version))
    if row is None:
        raise NotFound(f"model {model.name!r} has no version {version}")
    return row


def get_version(
    *, db: Database, owner: str, name: str, version: int
) -> tuple[ModelVersion, list[str]]:
    """The version and the aliases that point at it."""
    with db.read() as session:
        model = _model(session, owner, name)
        row = _version(session, model, version)
        return row, _aliases_of(session, model, version)


def _aliases_of(session: Session, model: RegisteredModel, version: int) -> list[str]:
    return list(
        session.scalars(
            select(ModelAlias.alias)
            .where(ModelAlias.model_id == model.id, ModelAlias.version == version)
            .order_by(ModelAlias.alias)
        )
    )


def delete_version(*, db: Database, owner: str, name: str, version: int) -> None:
    """The version (its number is not given again); VersionHasAlias while an alias
    points at it."""
    with db.write() as session:
        model = _model(session, owner, name, lock=True)
        row = _version(session, model, version)
        aliases = _aliases_of(session, model, version)
        if aliases:
            raise VersionHasAlias(
                f"version {version} of model {name!r} is aliased {', '.join(aliases)}; "
                "move or delete the alias first"
            )
        session.delete(row)
        model.updated_at = utcnow()


# ------------------------------------------------------------ aliases


def check_alias(alias: str) -> None:
    if not _ALIAS.match(alias) or alias == LATEST:
        raise Invalid(
            f"{alias!r} cannot be an alias: letters, digits, _ and -, starting with a "
            f"letter or _, at most 64 characters, and not {LATEST!r}"
        )


def set_alias(*, db: Database, owner: str, name: str, alias: str, version: int) -> bool:
    """Point the alias at the version, in one transaction (made if new). True if made."""
    check_alias(alias)
    with db.write() as session:
        model = _model(session, owner, name, lock=True)
        _version(session, model, version)
        row = session.get(ModelAlias, (model.id, alias))
        model.updated_at = now = utcnow()
        if row is None:
            session.add(ModelAlias(model_id=model.id, alias=alias, version=version, updated_at=now))
            return True
        row.version, row.updated_at = version, now
        return False


def delete_alias(*, db: Database, owner: str, name: str, alias: str) -> None:
    with db.write() as session:
        model = _model(session, owner, name, lock=True)
        row = session.get(ModelAlias, (model.id, alias))
        if row is None:
            raise NotFound(f"model {name!r} has no alias {alias!r}")
        session.delete(row)
        model.updated_at = utcnow()


# ------------------------------------------------------------ references


def parse_ref(ref: str) -> tuple[str, int | str | None]:
    """("name", None), ("name", 3) or ("name", "alias") from "name[@3|@alias]"."""
    if not _REF.match(ref):
        raise Invalid(f"{ref!r} names no model version: give name, name@VERSION or name@ALIAS")
    name, _, tail = ref.partition("@")
    if not tail or tail == LATEST:
        return name, None
    return name, int(tail) if tail.isdigit() else tail


def resolve(*, db: Database, owner: str, ref: str) -> Resolved:
    """The version a reference names, read from the database now (one query)."""
    with db.read() as session:
        return resolve_in(session, owner, ref)


def resolve_in(session: Session, owner: str, ref: str) -> Resolved:
    """The hot path of predict by reference: two columns, no row loaded."""
    name, which = parse_ref(ref)
    query, missing = _version_query(select(ModelVersion.version, ModelVersion.run_id), name, which)
    row = session.execute(query.where(RegisteredModel.owner == owner)).one_or_none()
    if row is None:
        raise NotFound(missing)
    return Resolved(name=name, version=int(row.version), run_id=str(row.run_id))


def resolve_version(*, db: Database, owner: str, ref: str) -> ModelVersion:
    """The version row a reference names (detached: readable after the session)."""
    name, which = parse_ref(ref)
    query, missing = _version_query(select(ModelVersion), name, which)
    with db.read() as session:
        row = session.scalars(query.where(RegisteredModel.owner == owner)).one_or_none()
        if not isinstance(row, ModelVersion):
            raise NotFound(missing)
        session.expunge(row)
        return row


def _version_query(query: Any, name: str, which: int | str | None) -> tuple[Any, str]:
    """`query` narrowed to the version a parsed reference names (but for the owner),
    and what to say when there is none."""
    query = query.join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id).where(
        RegisteredModel.name == name
    )
    if which is None:
        return (
            query.order_by(ModelVersion.version.desc()).limit(1),
            f"model {name!r} does not exist or has no versions",
        )
    if isinstance(which, int):
        return query.where(ModelVersion.version == which), f"model {name!r} has no version {which}"
    aliased = query.join(
        ModelAlias,
        (ModelAlias.model_id == ModelVersion.model_id)
        & (ModelAlias.version == ModelVersion.version),
    ).where(ModelAlias.alias == which)
    return aliased, f"model {name!r} has no alias {which!r}"


def versions_of_run(session: Session, run_id: str) -> list[str]:
    """ "name@N" for each registered version of the run."""
    rows = session.execute(
        select(RegisteredModel.name, ModelVersion.version)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ModelVersion.run_id == run_id)
        .order_by(RegisteredModel.name, ModelVersion.version)
    ).all()
    return [f"{n}@{v}" for n, v in rows]
