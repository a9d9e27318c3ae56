"""The catalog's Alembic environment and revisions, installed with the package."""
