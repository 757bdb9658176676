"""Liveness and readiness probes for the container orchestrator.

They are answered by a middleware at the top of the stack, before Django validates the
Host header: an orchestrator probes `127.0.0.1:8000`, which DJANGO_ALLOWED_HOSTS rightly
does not list, and a probe must not fail for that.
"""

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config.db import database_deadline, first_line

logger = logging.getLogger(__name__)

# Seconds for the whole check (the health check of a kept connection, a reconnect and the
# query), so that a probe with a 3 s timeout gets its 503 when the database is frozen.
READINESS_DEADLINE = 2.0


@never_cache
@require_safe
def healthz(request):
    """Answer while the process can serve requests at all."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    """Answer 200 when the database answers within READINESS_DEADLINE, 503 otherwise (without the reason)."""
    try:
        with database_deadline(READINESS_DEADLINE), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        # One line per probe: an outage repeats it every few seconds, and a traceback adds nothing.
        logger.error("Readiness check failed: the database is unavailable: %s", first_line(exc))
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


PROBES = {"/healthz": healthz, "/readyz": readyz}


class HealthProbeMiddleware:
    """Answer /healthz and /readyz before any other middleware looks at the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
