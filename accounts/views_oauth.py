"""POST /oauth/token (RFC 6749 §4.4) and POST /oauth/introspect (RFC 7662): thin views.

They read the HTTP request (the form body, the client's credentials) and write the
response; the rules are accounts.services.clients. Called by servers, not browsers: no
cookie, no CSRF token (csrf_exempt, and config.middleware skips the session, CSRF and
message middleware on these API paths).

Authlib supplies the §5.2 error vocabulary (its error classes, below and in the
services). Its server classes (AuthorizationServer, ClientAuthentication,
DjangoOAuth2Request) are not used, because for a client-credentials-only server they
would need to be worked around more than used: they merge query-string parameters into
the form (credentials in a URL are accepted), decode the Basic header without the
§2.3.1 form-decoding ("+" stays "+") and with lenient base64, fall through silently
when Basic has no colon, accept a request that uses both Basic and the body, take the
last of repeated parameters, check no content type or body size, and refuse an unknown
client before any secret comparison (its timing tells which client ids exist).

Errors (RFC 6749 §5.2, RFC 7662 §2.3): JSON `{"error", "error_description"}`, never cached.
- `invalid_client`: 401 with `WWW-Authenticate: Basic realm="gatehouse"`, for missing,
  malformed, wrong or unknown credentials, a disabled client, and any scheme but Basic;
- `invalid_request`: 400 for a body that is not form-encoded, too large, malformed,
  with a repeated or missing parameter, parameters in the URL, or two ways of client
  authentication at once (a `client_secret` in the body next to Basic; a `client_id`
  there is allowed when it is Basic's); 405 (with `Allow: POST`) for any method but POST;
- `unsupported_grant_type`, `invalid_scope`: 400;
- `insufficient_scope`: 403 at /oauth/introspect for a client without `tokens:introspect`;
- `slow_down`: 429 with `Retry-After` (seconds) when a rate limit is spent (the error
  code RFC 8628 registered for "ask less often").
"""

import base64
import binascii
from urllib.parse import parse_qsl, unquote_plus

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, UnsupportedGrantTypeError
from django.conf import settings
from django.http import JsonResponse
from django.utils.cache import patch_cache_control
from django.utils.http import parse_header_parameters
from django.views.decorators.csrf import csrf_exempt

from accounts.exceptions import RateLimited
from accounts.services.clients import (
    client_authenticate,
    client_may_introspect,
    client_used,
    oauth_address_count,
    oauth_client_count,
    service_token_issue,
    token_introspect,
)

FORM = "application/x-www-form-urlencoded"
# A token request is a few hundred bytes; an introspection carries one token (at most
# MAX_AUTHORIZATION_HEADER, 4 KiB). Anything larger is refused unread.
MAX_BODY = 8 * 1024
MAX_FIELDS = 16
REALM = 'Basic realm="gatehouse", charset="UTF-8"'
GRANT_TYPE = "client_credentials"
# The parameters each endpoint reads: each may appear at most once (RFC 6749 §3.1);
# others are ignored, as §3.2 asks.
TOKEN_PARAMETERS = ("grant_type", "scope", "client_id", "client_secret")
INTROSPECT_PARAMETERS = ("token", "token_type_hint", "client_id", "client_secret")


class InsufficientScopeError(OAuth2Error):
    """The client authenticated but lacks the scope the endpoint needs (RFC 6750 §3.1's code)."""

    error = "insufficient_scope"
    status_code = 403


class SlowDownError(OAuth2Error):
    """A rate limit is spent: RFC 8628's registered code for "ask less often", with Retry-After."""

    error = "slow_down"
    status_code = 429


@csrf_exempt
def token(request):
    """Issue a service token for client credentials (RFC 6749 §4.4)."""
    try:
        _allow_post(request)
        oauth_address_count(request=request, endpoint="token")
        form = _form(request, TOKEN_PARAMETERS)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError(description="The grant_type parameter is missing.")
        if grant_type != GRANT_TYPE:
            # Authlib's UnsupportedGrantTypeError would echo the client's value; its code, our words.
            raise OAuth2Error(
                error=UnsupportedGrantTypeError.error, description="Only grant_type=client_credentials is supported."
            )
        client = _client(request, form, endpoint="token")
        issued = service_token_issue(client=client, scope=form.get("scope"))
    except OAuth2Error as error:
        return _error(error)
    except RateLimited as refused:
        return _slow_down(refused)
    return _json(issued.as_response())


@csrf_exempt
def introspect(request):
    """Answer whether an access token is live, and its claims (RFC 7662)."""
    try:
        _allow_post(request)
        oauth_address_count(request=request, endpoint="introspect")
        try:
            form = _form(request, INTROSPECT_PARAMETERS)
        except InvalidRequestError:
            # RFC 7662 §2.1: the caller must authenticate; without Basic, a body we cannot
            # read carries no credentials either, and the answer is 401 whatever else is wrong.
            header = request.META.get("HTTP_AUTHORIZATION")
            if header is None or not header.strip():
                raise _invalid_client("Client authentication is required.") from None
            raise
        client = _client(request, form, endpoint="introspect")
        if "token" not in form:
            raise InvalidRequestError(description="The token parameter is missing.")
        if not client_may_introspect(client):
            raise InsufficientScopeError(description="This client lacks the tokens:introspect scope.")
        client_used(client=client)
    except OAuth2Error as error:
        return _error(error)
    except RateLimited as refused:
        return _slow_down(refused)
    # token_type_hint may be ignored (RFC 7662 §2.1): only access tokens are introspected, user or service.
    return _json(token_introspect(token=form["token"]))


class _MethodNotAllowed(InvalidRequestError):
    status_code = 405


def _allow_post(request) -> None:
    if request.method != "POST":
        raise _MethodNotAllowed(description="Use POST.")


def _form(request, known: tuple[str, ...]) -> dict[str, str]:
    """Return the known parameters of a form-encoded body; raise InvalidRequestError for any other body.

    Parameters sent without a value count as omitted (RFC 6749 §3.1); one sent twice is
    refused, even empty.
    """
    if request.META.get("QUERY_STRING"):
        # §2.3.1: client credentials MUST NOT be in the request URI (logs keep URLs).
        raise InvalidRequestError(description="Send the parameters in the form-encoded body, not in the URL.")
    content_type, params = parse_header_parameters(request.META.get("CONTENT_TYPE", ""))
    charset = params.get("charset", "utf-8").lower()
    if content_type.lower() != FORM or charset not in ("utf-8", "utf8"):
        raise InvalidRequestError(description=f"The body must be {FORM} (UTF-8).")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidRequestError(description="The Content-Length header is malformed.") from None
    if length > MAX_BODY:
        raise InvalidRequestError(description=f"The body is larger than {MAX_BODY} bytes.")
    body = request.body
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(description=f"The body is not valid {FORM} in UTF-8.") from None
    form = {}
    seen = set()
    for name, value in pairs:
        if name not in known:
            continue
        if name in seen:
            raise InvalidRequestError(description=f"The {name} parameter is repeated.")
        seen.add(name)
        if value:
            form[name] = value
    return form


def _client(request, form: dict[str, str], *, endpoint: str):
    """Return the client that authenticated the request, by HTTP Basic or in the body (exactly one).

    Raises InvalidClientError or InvalidRequestError; RateLimited when the client has
    spent its budget. The budget is counted once the secret matched: a client id is no
    secret (it is every service token's `sub`), so anyone could otherwise spend a
    client's budget with wrong secrets and lock it out. Wrong secrets count against the
    address's budget, and a 256-bit secret leaves nothing to guess.
    """
    client_id, client_secret = _credentials(request.META.get("HTTP_AUTHORIZATION"), form)
    client = client_authenticate(client_id=client_id, client_secret=client_secret)
    oauth_client_count(client_id=client.client_id, endpoint=endpoint)
    return client


def _credentials(header: str | None, form: dict[str, str]) -> tuple[str, str]:
    body_id, body_secret = form.get("client_id"), form.get("client_secret")
    if header is None or not header.strip():
        if body_id and body_secret:
            return body_id, body_secret
        raise _invalid_client(
            "Client authentication is required: HTTP Basic (client_secret_basic) or "
            "client_id and client_secret in the body (client_secret_post)."
        )
    if body_secret is not None:
        raise InvalidRequestError(description="Use one client authentication method: HTTP Basic or the body, not both.")
    client_id, client_secret = _basic(header)
    if body_id is not None and body_id != client_id:
        raise InvalidRequestError(description="The client_id in the body differs from the one in HTTP Basic.")
    return client_id, client_secret


def _basic(header: str) -> tuple[str, str]:
    """Return the client id and secret of an `Authorization: Basic` header (RFC 7617, RFC 6749 §2.3.1).

    Each of the two is form-urlencoded before the pair is base64-encoded, so each is
    form-decoded here ("+" is a space, %XX a UTF-8 byte). Strict base64; anything else
    is InvalidClientError.
    """
    if len(header) > settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]:
        raise _invalid_client("The Authorization header is too long.")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client("Authenticate with HTTP Basic (client_secret_basic) or in the body (client_secret_post).")
    try:
        decoded = base64.b64decode(value.strip().encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error):
        raise _invalid_client("The Basic credentials are not valid base64 of UTF-8 text.") from None
    encoded_id, colon, encoded_secret = decoded.partition(":")
    if not colon:
        raise _invalid_client("The Basic credentials must be client_id:client_secret.")
    try:
        client_id, client_secret = (unquote_plus(part, errors="strict") for part in (encoded_id, encoded_secret))
    except UnicodeDecodeError:
        raise _invalid_client("The Basic credentials are not valid form-urlencoded UTF-8.") from None
    if not client_id or not client_secret:
        raise _invalid_client("The Basic credentials must name both the client_id and the client_secret.")
    return client_id, client_secret


def _invalid_client(description: str) -> InvalidClientError:
    return InvalidClientError(status_code=401, description=description)


def _json(body: dict, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    # RFC 6749 §5.1: tokens and token errors are never cached.
    patch_cache_control(response, no_store=True)
    response["Pragma"] = "no-cache"
    return response


def _error(error: OAuth2Error) -> JsonResponse:
    response = _json(dict(error.get_body()), status=error.status_code)
    if error.status_code == 401:
        # §5.2: 401 names the scheme the client may use; RFC 7617 makes `realm` required.
        response["WWW-Authenticate"] = REALM
    if error.status_code == 405:
        response["Allow"] = "POST"
    return response


def _slow_down(refused: RateLimited) -> JsonResponse:
    response = _error(SlowDownError(description=f"Too many requests. Try again in {refused.retry_after} seconds."))
    response["Retry-After"] = str(refused.retry_after)
    return response
