"""What the in-process profiles share: production settings on a scratch Postgres, and gunicorn's WSGI call."""

import io
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager

PG = os.environ.get("PROFILE_PG_URL", "postgres://postgres@127.0.0.1:5432")


@contextmanager
def production_django(prefix: str, **env: str) -> Iterator[None]:
    """Set Django up with the production settings (and `env`) on a scratch database, migrated; drop it afterwards.

    The request receivers are what config.wsgi leaves to gunicorn.
    """
    import psycopg2

    database = f"{prefix}_{os.getpid()}"
    admin = psycopg2.connect(f"{PG}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{database}"')
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="config.settings.production",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
            JWT_SIGNING_KEY=secrets.token_urlsafe(40),
            DJANGO_ALLOWED_HOSTS="testserver",
            DATABASE_URL=f"{PG}/{database}",
            LOG_LEVEL="ERROR",
            **env,
        )
        import django

        django.setup()
        from django.core.management import call_command

        from config.receivers import drop_idle_request_receivers

        drop_idle_request_receivers()  # as config.wsgi does for gunicorn
        call_command("migrate", verbosity=0)
        yield
    finally:
        from django.db import connections

        connections.close_all()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def wsgi_post(handler, body: bytes, headers: dict) -> tuple[str, bytes]:
    """POST `body` to /graphql through `handler` (a WSGIHandler) as gunicorn calls it; return (status, body)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/graphql",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "443",
        "HTTP_HOST": "testserver",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_ACCEPT": "application/json",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        **headers,
    }
    statuses = []
    answer = handler(environ, lambda status, response_headers, exc_info=None: statuses.append(status))
    try:
        return statuses[0], b"".join(answer)
    finally:
        answer.close()
