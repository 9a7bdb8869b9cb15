"""Rows belong to an owner: another owner's id answers exactly like a missing one."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import NotFound
from app.core.ids import is_id
from app.db.models import Dataset, Run, Sweep
from app.db.session import Database

Owned = TypeVar("Owned", Dataset, Run, Sweep)


def owned(
    session: Session, model: type[Owned], row_id: str, owner: str, what: str, *, hold: bool = False
) -> Owned:
    """The owner's row, or NotFound; ids that could name no row are not even queried.
    `hold`: held against deletion (FOR KEY SHARE) until the transaction ends.

    One query, `WHERE id = :id AND owner = :owner`: the database answers no row
    for another owner's id exactly as for a missing one, so the two paths do the
    same work (no row is loaded, nothing is compared afterwards) and take the
    same time.
    """
    row = None
    if is_id(row_id):
        query = select(model).where(model.id == row_id, model.owner == owner)
        if hold:
            query = query.with_for_update(read=True, key_share=True)
        row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(f"{what} {row_id} does not exist")
    return row


def newest_named(*, db: Database, model: type[Owned], owner: str, name: str, what: str) -> str:
    """The id of the owner's newest row of this name (names need not be unique)."""
    with db.read() as session:
        return newest_named_in(session, model, owner, name, what)


def newest_named_in(session: Session, model: type[Owned], owner: str, name: str, what: str) -> str:
    """newest_named, in a transaction under way."""
    row_id = session.scalar(
        select(model.id)
        .where(model.owner == owner, model.name == name)
        .order_by(model.created_at.desc(), model.id.desc())
        .limit(1)
    )
    if row_id is None:
        raise NotFound(f"no {what} is named {name!r}")
    return str(row_id)
