"""Service clients: other servers calling with OAuth 2.0 client credentials (RFC 6749 §4.4).

The rules behind /oauth/token and /oauth/introspect (accounts.views_oauth only reads the
HTTP request and writes the response): create, rotate and disable clients (each audited),
authenticate a client, issue its access token, check a service token, and introspect any
access token (RFC 7662).

The OAuth errors are Authlib's (authlib.oauth2.rfc6749.errors): their codes and status
codes are RFC 6749 §5.2's, and they refuse a description outside the characters §5.2
allows. Descriptions never repeat client input.

Service tokens are JWTs signed like user tokens, with RFC 9068 claim names and
`token_type: "service"`, so accounts.tokens.jwt_decode refuses them where a user's token
is required, and service_token_check refuses a user's token.
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidScopeError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from graphql_jwt.settings import jwt_settings

from accounts.client import address_key, client_address
from accounts.exceptions import AuthError, TokenInvalid
from accounts.models import AuthEventKind, ServiceClient, User
from accounts.ratelimit import rate_limit_hit
from accounts.scopes import SCOPES, TOKENS_INTROSPECT
from accounts.selectors import service_caller_get, user_get_for_access
from accounts.services.audit import auth_event_record
from accounts.session_cache import clients_changed
from accounts.tokens import access_token_verify, jwt_encode, jwt_verify, opaque_token_generate
from accounts.validators import has_control_characters

SERVICE = "service"
# The private claim naming the secret a service token was issued for (ServiceClient.secret_version).
SECRET_VERSION = "secret_version"  # noqa: S105 - a claim name
CLIENT_ID_PREFIX = "svc_"
# The prefix and 144 random bits in base64url: never a user's numeric `sub`, never an
# argument a command line takes for an option (a leading "-").
CLIENT_ID = re.compile(r"svc_[A-Za-z0-9_-]{24}")
CLIENT_NAME_MAX_LENGTH = ServiceClient._meta.get_field("name").max_length
INACTIVE = {"active": False}
# A digest no secret has (it is of random bytes nobody keeps): what a presented secret is
# compared against when the client id names no client, so that an unknown client costs
# the same hash and comparison as a known one and timing does not reveal which ids exist.
_DUMMY_DIGEST = hashlib.sha256(secrets.token_bytes(32)).hexdigest()


@dataclass(frozen=True)
class ServiceToken:
    """A token response (RFC 6749 §5.1) of the client credentials grant."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 token type, not a secret

    def as_response(self) -> dict:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def scopes_clean(scopes) -> list[str]:
    """Return `scopes` (a space-separated string or a list) as known scopes in SCOPES order.

    Raises ValidationError keyed by `scopes` when one is unknown or none is given.
    """
    names = scopes.split() if isinstance(scopes, str) else list(scopes or ())
    unknown = sorted({name for name in names if name not in SCOPES})
    if unknown:
        raise ValidationError(
            {"scopes": f"Unknown scope(s): {', '.join(unknown)}. Scopes are: {', '.join(SCOPES)}."},
            code="invalid",
        )
    if not names:
        raise ValidationError({"scopes": f"Give at least one scope of: {', '.join(SCOPES)}."}, code="required")
    return [scope for scope in SCOPES if scope in names]


def client_name_clean(name) -> str:
    """Return the name stripped; raise ValidationError keyed by `name` when blank, too long or not printable."""
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or len(name) > CLIENT_NAME_MAX_LENGTH or has_control_characters(name):
        raise ValidationError(
            {"name": f"Give a name of 1 to {CLIENT_NAME_MAX_LENGTH} printable characters."}, code="invalid"
        )
    return name


def client_secret_digest(secret: str) -> str:
    """Return the stored digest of a client secret (SHA-256: the secret is 256 random bits)."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def client_get(*, client_id: str) -> ServiceClient | None:
    """Return the client with this client_id, or None; no query for an id we could not have issued."""
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        return None
    return ServiceClient.objects.filter(client_id=client_id).first()


def _actor_detail(actor: User | None, via: str) -> str:
    return f"by user {actor.pk}" if actor is not None else via


def _record(kind: str, client: ServiceClient, *, request, actor: User | None, via: str) -> None:
    auth_event_record(
        kind=kind, request=request, identifier=f"client:{client.client_id}", detail=_actor_detail(actor, via)
    )


@transaction.atomic
def client_create(
    *, name: str, scopes, request=None, actor: User | None = None, via: str = ""
) -> tuple[ServiceClient, str]:
    """Create an active service client; return it and its secret, which is never stored nor shown again.

    `actor` is the administrator who created it (else `via` says how, e.g. the command).
    Raises ValidationError keyed by field for a blank or overlong name or a bad scope.
    """
    errors = {}
    try:
        name = client_name_clean(name)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        scopes = scopes_clean(scopes)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    secret, digest = opaque_token_generate()
    now = timezone.now()
    client = ServiceClient.objects.create(
        name=name,
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(18),
        secret_digest=digest,
        scopes=" ".join(scopes),
        created_at=now,
        secret_changed_at=now,
    )
    _record(AuthEventKind.CLIENT_CREATED, client, request=request, actor=actor, via=via)
    return client, secret


@transaction.atomic
def client_secret_rotate(*, client: ServiceClient, request=None, actor: User | None = None, via: str = "") -> str:
    """Give the client a new secret and return it; the old secret and every token issued before now stop working.

    Raises ValidationError for a disabled client (it gets no token, whatever its secret).
    """
    locked = ServiceClient.objects.select_for_update().get(pk=client.pk)
    if not locked.is_active:
        raise ValidationError("A disabled client cannot get a new secret.", code="inactive")
    secret, locked.secret_digest = opaque_token_generate()
    locked.secret_changed_at = timezone.now()
    locked.save(update_fields=["secret_digest", "secret_changed_at"])
    # Its tokens issued before now are refused on the next request, in every process.
    clients_changed([locked.client_id])
    _record(AuthEventKind.CLIENT_SECRET_ROTATED, locked, request=request, actor=actor, via=via)
    client.secret_digest, client.secret_changed_at = locked.secret_digest, locked.secret_changed_at
    return secret


@transaction.atomic
def client_disable(*, client: ServiceClient, request=None, actor: User | None = None, via: str = "") -> bool:
    """Disable the client: it gets no token and its tokens are refused. Return False if it already was.

    There is no way back: a new client is created instead, so nothing issued before can revive.
    """
    locked = ServiceClient.objects.select_for_update().get(pk=client.pk)
    if not locked.is_active:
        client.is_active = False
        return False
    locked.is_active = False
    locked.save(update_fields=["is_active"])
    # Its tokens are refused on the next request, in every process.
    clients_changed([locked.client_id])
    _record(AuthEventKind.CLIENT_DISABLED, locked, request=request, actor=actor, via=via)
    client.is_active = False
    return True


def client_authenticate(*, client_id: str, client_secret: str) -> ServiceClient:
    """Return the active client these credentials belong to; raise InvalidClientError otherwise.

    The presented secret is always hashed and compared in constant time, against the
    client's digest or, for an unknown id, a dummy one; a disabled client is refused only
    after the same work. One message for every refusal (no enumeration).
    """
    client = client_get(client_id=client_id)
    expected = client.secret_digest if client is not None else _DUMMY_DIGEST
    matches = hmac.compare_digest(client_secret_digest(client_secret), expected)
    if client is None or not matches or not client.is_active:
        raise InvalidClientError(status_code=401, description="Client authentication failed.")
    return client


def client_used(*, client: ServiceClient) -> None:
    """Record that the client authenticated now (shown in the admin)."""
    client.last_used_at = timezone.now()
    ServiceClient.objects.filter(pk=client.pk).update(last_used_at=client.last_used_at)


def service_token_issue(*, client: ServiceClient, scope: str | None = None) -> ServiceToken:
    """Issue an access token of an authenticated client (RFC 6749 §4.4.3, RFC 9068 claims).

    `scope` (space-separated) must be a subset of the client's scopes; omitted or blank,
    the token gets all of them. Raises InvalidScopeError.
    """
    granted = client.scope_list
    # RFC 6749 §3.3: scope tokens separated by single spaces (no tabs, no line breaks).
    requested = scope.split(" ") if scope else granted
    if not requested or any(name not in granted for name in requested):
        raise InvalidScopeError(description="The requested scope is unknown or not granted to this client.")
    scope_text = " ".join(name for name in granted if name in requested)
    lifetime = settings.SERVICE_TOKEN_LIFETIME
    now = int(time.time())
    payload = {
        "iss": jwt_settings.JWT_ISSUER,
        "aud": jwt_settings.JWT_AUDIENCE,
        "sub": client.client_id,
        "client_id": client.client_id,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
        "scope": scope_text,
        "token_type": SERVICE,
        # Which secret the client authenticated with: a rotation refuses every token of
        # the old one at once, even one issued in the same second (`iat` counts seconds).
        SECRET_VERSION: client.secret_version,
    }
    token = jwt_encode(payload)
    client_used(client=client)
    return ServiceToken(access_token=token, expires_in=lifetime, scope=scope_text)


def service_token_verify(token: str) -> dict:
    """Return the verified claims of a service token, without the database.

    Raises TokenInvalid (not a service token of ours, e.g. a user's token) or TokenExpired.
    The client is checked by accounts.selectors.service_caller_get.
    """
    payload = jwt_verify(token, token_type=SERVICE, max_lifetime=settings.SERVICE_TOKEN_LIFETIME)
    subject, scope = payload["sub"], payload.get("scope")
    if payload.get("client_id") != subject or not CLIENT_ID.fullmatch(subject) or "sid" in payload:
        raise TokenInvalid
    if not isinstance(scope, str) or not scope or any(name not in SCOPES for name in scope.split(" ")):
        raise TokenInvalid
    if type(payload.get(SECRET_VERSION)) is not int:
        raise TokenInvalid
    return payload


def service_token_check(token: str) -> tuple[ServiceClient, dict]:
    """Return the client of a live service token and the token's claims.

    Raises TokenInvalid (not a service token of ours, e.g. a user's token), TokenExpired,
    or TokenRevoked: the client is unknown or disabled, its secret was rotated after the
    token was issued (counted in whole seconds, as `iat` is), or the token holds a scope
    the client no longer has. Checked exactly as a GraphQL request bearing it is.
    """
    payload = service_token_verify(token)
    return service_caller_get(claims=payload).client, payload


def client_may_introspect(client: ServiceClient) -> bool:
    return TOKENS_INTROSPECT in client.scope_list


def token_introspect(*, token) -> dict:
    """Return the RFC 7662 answer for an access token, a user's or a service's.

    A live token answers its claims; a user's token is checked exactly as a request
    bearing it would be (accounts.selectors.user_get_for_access: session live, account
    active). Anything else (malformed, expired, ended, deactivated, disabled) answers
    exactly {"active": false}, so the answer says nothing about why.
    """
    if not isinstance(token, str) or not token:
        return dict(INACTIVE)
    common = ("sub", "exp", "iat", "iss", "aud", "jti", "token_type")
    try:
        claims = access_token_verify(token)
        user = user_get_for_access(claims=claims)
    except TokenInvalid:
        pass  # not a user's token: perhaps a service's
    except AuthError:
        return dict(INACTIVE)
    else:
        return {
            "active": True,
            **{name: claims.payload[name] for name in common},
            "sid": claims.session_id,
            "username": user.username,
        }
    try:
        _client, payload = service_token_check(token)
    except AuthError:
        return dict(INACTIVE)
    return {"active": True, **{name: payload[name] for name in (*common, "scope", "client_id")}}


# Rate limits ------------------------------------------------------------------------


def oauth_address_count(*, request, endpoint: str) -> None:
    """Count one request to an OAuth endpoint ("token" or "introspect") from the client's address.

    Raises RateLimited. Counted before the body is read, so a flood costs no parsing.
    """
    rate = settings.GATEHOUSE[f"OAUTH_{endpoint.upper()}_RATE_PER_ADDRESS"]
    rate_limit_hit(scope=f"oauth_{endpoint}_address", key=address_key(client_address(request)), rate=rate)


def oauth_client_count(*, client_id: str, endpoint: str) -> None:
    """Count one request to an OAuth endpoint by an authenticated client (after its secret matched).

    Raises RateLimited.
    """
    rate = settings.GATEHOUSE[f"OAUTH_{endpoint.upper()}_RATE_PER_CLIENT"]
    rate_limit_hit(scope=f"oauth_{endpoint}_client", key=client_id, rate=rate)
