"""What the token-returning mutations share."""

import graphene

from accounts.cookies import refresh_token_deliver
from accounts.tokens import SessionTokens

REFRESH_TOKEN_OUT = "The refresh token: keep it secret, use it once. Null in cookie mode, where it is a cookie."  # noqa: S105
REFRESH_TOKEN_IN = "The refresh token; omit it in cookie mode to use the cookie."  # noqa: S105
REFRESH_EXPIRES_IN = (
    "Unix time after which this session can no longer be refreshed, unless refreshed before "
    "(django-graphql-jwt's field). Null when it does not fit a GraphQL Int, from 2038-01-19 on."
)
REFRESH_EXPIRES_IN_DEPRECATION = "A GraphQL Int holds Unix time only until 2038-01-19: use `refreshExpiresAt`."
REFRESH_EXPIRES_AT = "When this session can no longer be refreshed, unless refreshed before (ISO 8601)."
# GraphQL's Int is a signed 32-bit integer (spec §3.5.1).
GRAPHQL_INT_MAX = 2**31 - 1


def refresh_expires_in_field() -> graphene.Int:
    return graphene.Int(description=REFRESH_EXPIRES_IN, deprecation_reason=REFRESH_EXPIRES_IN_DEPRECATION)


def refresh_expires_at_field(*, required: bool) -> graphene.DateTime:
    return graphene.DateTime(required=required, description=REFRESH_EXPIRES_AT)


def session_tokens_payload(info, tokens: SessionTokens) -> dict:
    """Return the payload fields of new session tokens; in cookie mode the refresh token goes to the cookie.

    Every value here is representable, so a committed sign-in is never answered with a
    serialisation error: `refreshExpiresIn` is null where Unix time outgrows an Int.
    """
    expires_in = tokens.refresh_expires_in
    return {
        **tokens.as_payload(),
        "refresh_token": refresh_token_deliver(info.context, tokens),
        "refresh_expires_in": expires_in if expires_in <= GRAPHQL_INT_MAX else None,
    }
