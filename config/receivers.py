"""Request-signal receivers that a production process does not need, disconnected once at start.

Django connects three receivers to every request's start and end: `reset_queries` (clears
each database connection's query log), `close_old_connections` (both ends: closes a
connection that is broken or past CONN_MAX_AGE) and `close_caches` (calls `close()` on
every cache). Each walks the connection handlers, on every request; together they were
about a tenth of an anonymous GraphQL request's time in process (bench/profile_request.py).
Two of them do nothing in production:

- the query log is only written with DEBUG on (or a test's CaptureQueriesContext), and it
  is bounded anyway (9,000 entries);
- `close()` is a no-op for local memory caches and for django-redis unless its
  CLOSE_CONNECTION option (or DJANGO_REDIS_CLOSE_CONNECTION) asks for one, which would
  reconnect to Redis on every request.

`close_old_connections` stays: it is what recycles a database connection.
"""

from django.conf import settings
from django.core import signals
from django.core.cache import close_caches
from django.db import reset_queries


def drop_idle_request_receivers() -> list[str]:
    """Disconnect the receivers that would do nothing here; return their names."""
    dropped = []
    if not settings.DEBUG and signals.request_started.disconnect(reset_queries):
        dropped.append("reset_queries")
    if not _caches_close_anything() and signals.request_finished.disconnect(close_caches):
        dropped.append("close_caches")
    return dropped


def _caches_close_anything() -> bool:
    for config in settings.CACHES.values():
        backend = config["BACKEND"]
        if backend == "django.core.cache.backends.locmem.LocMemCache":
            continue
        if backend == "django_redis.cache.RedisCache" and not config.get("OPTIONS", {}).get(
            "CLOSE_CONNECTION", getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False)
        ):
            continue
        return True  # another backend, or one told to close: keep Django's receiver
    return False
