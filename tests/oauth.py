"""What the OAuth endpoint tests share: service clients, Basic headers and form posts."""

import base64
from urllib.parse import quote_plus, urlencode

from accounts.models import AuthEvent, ServiceClient
from accounts.scopes import SCOPES
from accounts.services import client_create

FORM = "application/x-www-form-urlencoded"
TOKEN_URL = "/oauth/token"
INTROSPECT_URL = "/oauth/introspect"
ALL_SCOPES = " ".join(SCOPES)


def fixed_settings(settings) -> None:
    """Pin what these tests assume, whatever the developer's environment says (env_rate, env_seconds)."""
    settings.SERVICE_TOKEN_LIFETIME = 600
    settings.GATEHOUSE = {
        **settings.GATEHOUSE,
        "OAUTH_TOKEN_RATE_PER_CLIENT": (30, 60),
        "OAUTH_TOKEN_RATE_PER_ADDRESS": (60, 60),
        "OAUTH_INTROSPECT_RATE_PER_CLIENT": (600, 60),
        "OAUTH_INTROSPECT_RATE_PER_ADDRESS": (600, 60),
    }


def make_client(name: str = "billing", scopes: str = ALL_SCOPES) -> tuple[ServiceClient, str]:
    """Return a new active client and its secret."""
    return client_create(name=name, scopes=scopes, via="tests")


def basic(client_id: str, secret: str, *, encode: bool = True) -> str:
    """Return an Authorization header for client_secret_basic (each part form-urlencoded, RFC 6749 §2.3.1)."""
    if encode:
        client_id, secret = quote_plus(client_id), quote_plus(secret)
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode("ascii")


def post_form(client, path: str, data, *, authorization: str | None = None, content_type: str = FORM, **extra):
    """POST `data` (a dict, a list of pairs, or a ready body) to `path` through Django's whole stack."""
    body = data if isinstance(data, str | bytes) else urlencode(data)
    if authorization is not None:
        extra["HTTP_AUTHORIZATION"] = authorization
    return client.post(path, body, content_type=content_type, **extra)


def state() -> tuple:
    """What a refused request must leave unchanged: every client's row and the audit trail."""
    clients = list(ServiceClient.objects.order_by("pk").values_list("pk", "secret_digest", "is_active", "last_used_at"))
    return clients, AuthEvent.objects.count()


def assert_oauth_error(response, status: int, error: str) -> dict:
    """Assert an RFC 6749 §5.2 error response and return its body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description"}
    assert body.get("error_description")
    assert "no-store" in response["Cache-Control"]
    assert response["Pragma"] == "no-cache"
    if status == 401:
        assert response["WWW-Authenticate"].startswith('Basic realm="gatehouse"')
    return body
