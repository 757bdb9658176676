"""Bearer authentication of one request: read the header once, verify once, load once."""

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from graphql_jwt.settings import jwt_settings

from accounts.exceptions import AuthError, TokenInvalid
from accounts.selectors import ServiceCaller, service_caller_get, user_get_for_access
from accounts.services.clients import service_token_verify
from accounts.tokens import OtherTokenType, access_token_verify


def bearer_token_from_header(header: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None when absent.

    An empty header counts as absent (Apollo's documented auth link sends one when signed
    out). Anything else that is not exactly the Bearer scheme with one token, such as
    `JWT <token>`, `Basic ...`, `Bearer` alone or a token with spaces, is TOKEN_INVALID:
    a client that meant to authenticate is never quietly treated as anonymous.
    """
    if header is None or not header.strip():
        return None
    if len(header) > settings.GATEHOUSE["MAX_AUTHORIZATION_HEADER"]:
        raise TokenInvalid
    parts = header.split()
    # RFC 7235: the scheme name is case-insensitive.
    if len(parts) != 2 or parts[0].lower() != jwt_settings.JWT_AUTH_HEADER_PREFIX.lower():
        raise TokenInvalid
    return parts[1]


class BearerAuthentication:
    """The outcome of one request's Authorization header.

    The token is verified when the request arrives (no database); the user (or, for a
    service token, the client) is loaded on first use, once, so anonymous and invalid
    requests cost no query and an authenticated one costs exactly one however many fields
    ask for it (none with the session cache warm).

    A user's token is tried first, so a user's request costs what it did before service
    tokens existed. Only a token that we signed but that is of another type
    (OtherTokenType) is verified again as a service token
    (accounts.services.clients.service_token_verify: signature, type and claims, from
    scratch); a forged or broken token costs one verification. A service token's request has no viewer (`get_user` is
    None, so every user-only operation is UNAUTHENTICATED); its caller is `get_caller`.
    """

    __slots__ = ("_caller", "_user", "claims", "error", "service_claims")

    def __init__(self, header: str | None):
        self.claims = None
        self.service_claims = None
        self.error: AuthError | None = None
        self._user = None
        self._caller = None
        try:
            token = bearer_token_from_header(header)
            if token is not None:
                try:
                    self.claims = access_token_verify(token)
                except OtherTokenType:
                    self.service_claims = service_token_verify(token)
        except AuthError as exc:
            self.error = exc

    def get_user(self):
        """Return the authenticated user, or None for an anonymous request or a service token's.

        Raises the request's token error (TokenInvalid, TokenExpired, TokenRevoked), for a
        service token too: a revoked one is never served as anonymous.
        """
        if self.error is not None:
            raise type(self.error)(self.error.message)
        if self.service_claims is not None:
            self.get_caller()
            return None
        if self.claims is None:
            return None
        if self._user is None:
            try:
                self._user = user_get_for_access(claims=self.claims)
            except AuthError as exc:
                self.error = exc
                raise
        return self._user

    def get_caller(self) -> ServiceCaller | None:
        """Return the service client calling with its token, or None for a user's or anonymous request.

        Raises the request's token error (TokenInvalid, TokenExpired, TokenRevoked).
        """
        if self.error is not None:
            raise type(self.error)(self.error.message)
        if self.service_claims is None:
            return None
        if self._caller is None:
            try:
                self._caller = service_caller_get(claims=self.service_claims)
            except AuthError as exc:
                self.error = exc
                raise
        return self._caller

    @property
    def is_service(self) -> bool:
        """Whether the request carries a service token (verified, though its client is not checked yet)."""
        return self.service_claims is not None

    def get_user_or_anonymous(self):
        """Return the user, or AnonymousUser for anonymous and failed requests (for Django)."""
        try:
            return self.get_user() or AnonymousUser()
        except AuthError:
            return AnonymousUser()
