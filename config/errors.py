"""JSON answers for the errors Django handles outside any view (bad Host, unknown path, crash)."""

from enum import Enum

from django.http import JsonResponse
from django.utils.cache import patch_cache_control

from accounts.error_codes import AuthErrorCode
from schema.errors import RequestErrorCode


def _error(status: int, code: Enum, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"message": message, "extensions": {"code": code.value}}]}, status=status)
    patch_cache_control(response, no_store=True)
    return response


def bad_request(request, exception=None):
    return _error(400, RequestErrorCode.BAD_REQUEST, "Bad request.")


def permission_denied(request, exception=None):
    return _error(403, AuthErrorCode.FORBIDDEN, "Forbidden.")


def not_found(request, exception=None):
    return _error(404, RequestErrorCode.NOT_FOUND, "Not found.")


def server_error(request):
    return _error(500, RequestErrorCode.INTERNAL_SERVER_ERROR, "Internal server error.")
