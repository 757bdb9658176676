"""What the token-returning mutations share."""

from accounts.cookies import refresh_token_deliver
from accounts.tokens import SessionTokens

REFRESH_TOKEN_OUT = "The refresh token: keep it secret, use it once. Null in cookie mode, where it is a cookie."  # noqa: S105
REFRESH_TOKEN_IN = "The refresh token; omit it in cookie mode to use the cookie."  # noqa: S105
REFRESH_EXPIRES_IN = "Unix time after which this session can no longer be refreshed, unless refreshed before."


def session_tokens_payload(info, tokens: SessionTokens) -> dict:
    """Return the payload fields of new session tokens; in cookie mode the refresh token goes to the cookie."""
    return {**tokens.as_payload(), "refresh_token": refresh_token_deliver(info.context, tokens)}
