"""What the tests that run real servers and tools (gunicorn with production settings, nginx, redis-server) share."""

import os
import secrets
import socket
from pathlib import Path

import pytest


def missing(reason: str):
    """Skip a test whose tool or service is absent on a developer's machine; fail it in CI.

    `make test` needs only Python, but CI installs (or starts) everything, so there a
    missing tool is a broken set-up, never a reason to skip.
    """
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(tmp: Path, *, port: int | None = None, **overrides: str) -> dict[str, str]:
    """Return the environment of a production server on a SQLite file and a STATIC_ROOT in `tmp`.

    Fresh secrets, the loopback address, a free port (or `port`) and one worker; nothing
    from the caller's environment that configures Gatehouse leaks in.
    """
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JWT_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "STATIC_ROOT": str(tmp / "static"),
        "HOST": "127.0.0.1",
        "PORT": str(port or free_port()),
        "WEB_CONCURRENCY": "1",
        **overrides,
    }
