"""REST routes under /api/v1, one small module per resource."""
