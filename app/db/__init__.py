"""SQLAlchemy 2.0 models, engine and sessions. The schema is created only by Alembic."""
