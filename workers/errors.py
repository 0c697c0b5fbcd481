"""Which errors are transient (retry the task with backoff) and which are not."""

from __future__ import annotations

import sqlalchemy.exc


def transient_errors() -> tuple[type[BaseException], ...]:
    """Lost database or broker connections, lock timeouts: worth retrying as is."""
    errors: list[type[BaseException]] = [
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        sqlalchemy.exc.DisconnectionError,
        ConnectionError,
        TimeoutError,
    ]
    try:
        import kombu.exceptions
        import redis.exceptions

        errors += [kombu.exceptions.OperationalError, redis.exceptions.ConnectionError,
                   redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover - both ship with celery[redis]
        pass
    return tuple(errors)


TRANSIENT = transient_errors()


class EngineMismatch(Exception):
    """The worker computes different run keys than the service stored: its engine
    version or kernel differs. Retrying cannot help, so the chunk fails at once."""
