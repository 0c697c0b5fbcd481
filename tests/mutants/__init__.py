"""Curated semantic mutants: small deliberate mistakes the suite must catch.

Run outside CI (it takes several minutes): `python -m tests.mutants` from the
repository root. See docs/testing.md.
"""
