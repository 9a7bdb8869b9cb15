"""the model registry: registered_model, model_version, model_alias

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

A trained model was reachable only by its run's id. A registered model is a
name of the owner's; each of its versions is a succeeded run, registered with
what it was trained on (feature names, label, classes, whether standardized,
hyperparameters and metrics) and never changed after; an alias (champion,
staging, …) names one version and moves in one statement. A run that a version
uses may not be deleted (RESTRICT), nor a version an alias points at.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op
from app.db.base import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registered_model",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("versions_made", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_model")),
        sa.UniqueConstraint("owner", "name", name=op.f("uq_registered_model_owner_name")),
    )
    op.create_table(
        "model_version",
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("feature_names", sa.JSON(), nullable=False),
        sa.Column("label_name", sa.String(length=200), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("standardized", sa.Boolean(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
            name=op.f("fk_model_version_model_id_registered_model"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["run.id"], name=op.f("fk_model_version_run_id_run"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_model_version")),
    )
    op.create_index(op.f("ix_model_version_run_id"), "model_version", ["run_id"])
    op.create_table(
        "model_alias",
        sa.Column("model_id", sa.String(length=36), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id", "version"],
            ["model_version.model_id", "model_version.version"],
            name=op.f("fk_model_alias_model_id_model_version"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_model.id"],
            name=op.f("fk_model_alias_model_id_registered_model"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "alias", name=op.f("pk_model_alias")),
    )


def downgrade() -> None:
    op.drop_table("model_alias")
    op.drop_index(op.f("ix_model_version_run_id"), table_name="model_version")
    op.drop_table("model_version")
    op.drop_table("registered_model")
