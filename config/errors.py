"""JSON answers for the errors Django handles outside any view (bad Host, unknown path, crash)."""

from django.http import JsonResponse
from django.utils.cache import patch_cache_control


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status=status)
    patch_cache_control(response, no_store=True)
    return response


def bad_request(request, exception=None):
    return _error(400, "BAD_REQUEST", "Bad request.")


def permission_denied(request, exception=None):
    return _error(403, "FORBIDDEN", "Forbidden.")


def not_found(request, exception=None):
    return _error(404, "NOT_FOUND", "Not found.")


def server_error(request):
    return _error(500, "INTERNAL_SERVER_ERROR", "Internal server error.")
