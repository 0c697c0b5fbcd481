"""Alembic migrations for betascope's database (run via `betascope db upgrade`)."""
