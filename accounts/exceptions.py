"""Exceptions the account rules raise for authentication and authorization failures.

Field-level input problems are Django `ValidationError`s keyed by field; these are the
request-level refusals, each with a fixed code and a message safe to show to anyone.
"""

from accounts.error_codes import AuthErrorCode


class AuthError(Exception):
    """A refusal with a stable code; the message never depends on hidden state."""

    code: AuthErrorCode = AuthErrorCode.UNAUTHENTICATED
    default_message = "Authentication required."

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)

    @property
    def extensions(self) -> dict:
        return {"code": self.code.value}


class Unauthenticated(AuthError):
    code = AuthErrorCode.UNAUTHENTICATED
    default_message = "You must be signed in to do this."


class Forbidden(AuthError):
    code = AuthErrorCode.FORBIDDEN
    default_message = "You do not have permission to do this."


class InvalidCredentials(AuthError):
    # One message for unknown account, wrong password and inactive account (no enumeration).
    code = AuthErrorCode.INVALID_CREDENTIALS
    default_message = "Please enter a correct email and password."


class TokenInvalid(AuthError):
    code = AuthErrorCode.TOKEN_INVALID
    default_message = "The token is invalid."


class TokenExpired(AuthError):
    code = AuthErrorCode.TOKEN_EXPIRED
    default_message = "The token has expired."


class RefreshTokenAlreadyUsed(TokenInvalid):
    """A refresh token presented again within the grace window: refused, nothing else happens.

    Its own class so that cookie mode can tell it from a dead token: the cookie is kept
    (a second tab lost a race), not deleted.
    """

    default_message = "This refresh token has already been used."


class TokenRevoked(AuthError):
    code = AuthErrorCode.TOKEN_REVOKED
    default_message = "The token has been revoked."


class RateLimited(AuthError):
    code = AuthErrorCode.RATE_LIMITED
    default_message = "Too many attempts. Try again later."

    def __init__(self, retry_after: int, message: str | None = None, *, first: bool = True):
        self.retry_after = max(1, int(retry_after))
        self.first = first
        super().__init__(message)

    @property
    def extensions(self) -> dict:
        return {"code": self.code.value, "retryAfter": self.retry_after}
