"""The documents published under /.well-known/: thin views over accounts.keys and the settings.

Both are public, the same for every caller and cheap, so they are served with
`Cache-Control: public, max-age=300` and `Access-Control-Allow-Origin: *` (a browser app
may verify tokens too; nothing here is a credential). /.well-known/ is one of the API
paths (GATEHOUSE["API_PATH_PREFIXES"]): no session, CSRF or message middleware runs,
and plain HTTP in a deployment that requires HTTPS is refused, never redirected: a JWKS
fetched over plain HTTP could be swapped for an attacker's keys on the way.

The metadata's URLs come from PUBLIC_URL alone, never from the request (Host,
X-Forwarded-Host): an attacker who could make Gatehouse name another host would make
clients fetch keys from it. Without PUBLIC_URL the metadata is not served (404).
"""

from django.conf import settings
from django.http import JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from accounts.keys import published_jwks
from accounts.scopes import SCOPES
from schema.errors import RequestErrorCode

CACHE_SECONDS = 300
ALLOWED_METHODS = ("GET", "HEAD")
JWKS_PATH = "/.well-known/jwks.json"
# The OAuth endpoints' paths (PRODUCT.md, accounts/urls_oauth.py).
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a password)
INTROSPECTION_PATH = "/oauth/introspect"
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def _error(status: int, code: RequestErrorCode, message: str) -> JsonResponse:
    response = JsonResponse({"errors": [{"message": message, "extensions": {"code": code.value}}]}, status=status)
    patch_cache_control(response, no_store=True)
    return response


def _published(view):
    """Serve `view`'s document to GET and HEAD only (405 JSON otherwise), cacheable by anyone."""

    @csrf_exempt
    def wrapper(request):
        if request.method not in ALLOWED_METHODS:
            response = _error(405, RequestErrorCode.METHOD_NOT_ALLOWED, "Use GET: this document is read-only.")
            response["Allow"] = ", ".join(ALLOWED_METHODS)
            # A client error: the access log line is enough (no "Method Not Allowed" warning per request).
            response._has_been_logged = True
            return response
        response = view(request)
        if response.status_code == 200:
            patch_cache_control(response, public=True, max_age=CACHE_SECONDS)
            response["Access-Control-Allow-Origin"] = "*"
        return response

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


@_published
def jwks(request):
    """The JWK Set (RFC 7517): the current and previous public keys; `[]` under HS256."""
    return JsonResponse(published_jwks())


@_published
def authorization_server_metadata(request):
    """RFC 8414 metadata: where the keys, the token endpoint and introspection are."""
    base = settings.PUBLIC_URL
    if not base:
        return _error(404, RequestErrorCode.NOT_FOUND, "Not published: PUBLIC_URL is not set.")
    return JsonResponse(
        {
            "issuer": settings.GRAPHQL_JWT["JWT_ISSUER"],
            "jwks_uri": base + JWKS_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "introspection_endpoint": base + INTROSPECTION_PATH,
            "grant_types_supported": ["client_credentials"],
            # Client credentials only: no authorization endpoint, so no response type.
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "scopes_supported": list(SCOPES),
        }
    )
