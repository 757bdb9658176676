"""Error codes of the account rules. The schema turns them into GraphQL enums and
`extensions.code` values; tests compare against these members, never against strings."""

from enum import Enum


class UserErrorCode(Enum):
    """Why one input field was refused (a payload's `errors`)."""

    REQUIRED = "required"
    INVALID = "invalid"
    UNIQUE = "unique"
    TOO_LONG = "too_long"
    PASSWORD_TOO_SHORT = "password_too_short"
    PASSWORD_TOO_LONG = "password_too_long"
    PASSWORD_TOO_COMMON = "password_too_common"
    PASSWORD_ENTIRELY_NUMERIC = "password_entirely_numeric"
    PASSWORD_TOO_SIMILAR = "password_too_similar"
    INVALID_TOKEN = "invalid_token"
    NOT_FOUND = "not_found"
    INVALID_PASSWORD = "invalid_password"


class AuthErrorCode(Enum):
    """Why a request as a whole was refused (a top-level error's `extensions.code`)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    RATE_LIMITED = "RATE_LIMITED"
