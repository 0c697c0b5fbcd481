"""The data layer: models, sessions, bulk writes and chunk state (no FastAPI, no torch)."""

from api.db.base import Base, utcnow
from api.db.models import Chunk, Sweep
from api.db.session import Database, get_database, session_scope

__all__ = [
    "Base", "Chunk", "Database", "Sweep", "get_database", "session_scope", "utcnow",
]
