"""Plain HTTP to an API path is refused with a JSON error, never redirected to https.

With SECURE_SSL_REDIRECT on, Django's SecurityMiddleware answers every plain-HTTP request
with a 301 to https. That suits a browser page (the admin), but not an API: by the time
the redirect is sent, the Bearer token or the password in the request has already crossed
the network in clear, and HTTP clients follow the redirect and send it a second time. So
the paths in GATEHOUSE["API_PATH_PREFIXES"] answer 403 HTTPS_REQUIRED instead and the
request is never executed: a client configured with an http:// URL fails on its first
call instead of working while leaking. Other paths still redirect, and the health probes
answer before this middleware runs.
"""

import posixpath
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import JsonResponse
from django.utils.cache import patch_cache_control

from schema.errors import RequestErrorCode


def is_api_path(path: str, prefixes: Iterable[str]) -> bool:
    """Return whether `path` is one of `prefixes` or lies below one of them.

    Below means at a "/" boundary, whether or not the prefix ends in "/": "/graphql" and
    "/graphql/" both cover "/graphql", "/graphql/" and "/graphql/x", never "/graphqlx".
    Five middlewares ask this of every request: the answer is remembered for the most
    recent paths (a bounded cache, so no flood of distinct paths can grow it).
    """
    return _is_api_path(path, prefixes if isinstance(prefixes, tuple) else tuple(prefixes))


@lru_cache(maxsize=1024)
def _is_api_path(path: str, prefixes: tuple[str, ...]) -> bool:
    bases = (prefix.rstrip("/") for prefix in prefixes)
    return any(path == base or path.startswith(base + "/") for base in bases)


def https_required() -> JsonResponse:
    """Return the refusal of a plain-HTTP API request: 403, GraphQL-shaped, never cached."""
    response = JsonResponse(
        {
            "errors": [
                {
                    "message": "This API is served over HTTPS only: use https. The request was not processed.",
                    "extensions": {"code": RequestErrorCode.HTTPS_REQUIRED.value},
                }
            ]
        },
        status=403,
    )
    patch_cache_control(response, no_store=True)
    # A client error that says nothing about the server: the access log line is enough, and
    # Django's request logger would otherwise add a "Forbidden" line for every such request.
    response._has_been_logged = True
    return response


class HttpsOnlyApiMiddleware:
    """Refuse plain-HTTP requests to the API paths; sits just before SecurityMiddleware."""

    def __init__(self, get_response):
        if not settings.SECURE_SSL_REDIRECT:
            # HTTPS is not required (local development, or TLS not yet in front): nothing to refuse.
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.prefixes = tuple(settings.GATEHOUSE["API_PATH_PREFIXES"])

    def __call__(self, request):
        # is_secure() believes X-Forwarded-Proto only as SECURE_PROXY_SSL_HEADER says.
        if not request.is_secure() and (
            # A credential is never redirected, whatever the path: a client whose base URL
            # is off by a slash (`//graphql`) must not be sent round to send its token again.
            "HTTP_AUTHORIZATION" in request.META or is_api_path(_normalized(request.path_info), self.prefixes)
        ):
            return https_required()
        return self.get_response(request)


def _normalized(path: str) -> str:
    """Return `path` with repeated slashes and dot segments folded, as clients and proxies may."""
    folded = posixpath.normpath("/" + path.split(";", 1)[0])
    return "/" + folded.lstrip("/")
