"""Service functions behind the routes (keyword-only arguments, no FastAPI)."""
