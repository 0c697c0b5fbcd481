"""Execution: chunk tasks, the Celery app, the in-process executor, the reconciler.

Imports api.settings and api.db (never routes); torch is imported only when a
chunk actually runs, so the API can import the dispatch side cheaply.
"""
