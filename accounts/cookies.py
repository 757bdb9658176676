"""Cookie mode: the refresh token in an HttpOnly cookie, for browser apps.

Off by default (GATEHOUSE["REFRESH_TOKEN_COOKIE"]). When on, sign-in and refresh put the
refresh token in a cookie instead of the response body, where page scripts (and so an
XSS payload) cannot read it, and `refreshToken` / `revokeToken` read it when their
argument is absent. The access token still travels in the body and the Authorization
header; the cookie authenticates nothing but those two mutations.

The cookie is `HttpOnly`, `Secure`, `SameSite` (Lax, or Strict) and scoped to the
GraphQL path; with the path `/` it takes the `__Host-` prefix (no Domain, so no
subdomain can set or read it), otherwise `__Secure-`. Because a browser attaches it on
its own, every request that uses it must prove it comes from an allowed page: its
`Origin` must be the API's own or one of CORS_ALLOWED_ORIGINS. The GraphQL view already
refuses what a browser can send cross-site without a preflight (form posts, GET
mutations), as Apollo Server's CSRF prevention does.

The device token (accounts.devices) gets a cookie of its own in cookie mode, with the
same attributes and as long-lived as the token. It needs no origin check: it
authenticates nothing, it only chooses which sign-in budget an attempt counts against.
"""

import time

from django.conf import settings

from accounts.exceptions import AuthError, Forbidden, RefreshTokenAlreadyUsed, Unauthenticated
from accounts.tokens import SessionTokens

COOKIE_BASENAME = "gatehouse_refresh"
DEVICE_COOKIE_BASENAME = "gatehouse_device"
_PENDING = "_gatehouse_refresh_cookie"
_DEVICE_PENDING = "_gatehouse_device_cookie"


def cookie_mode() -> bool:
    return settings.GATEHOUSE["REFRESH_TOKEN_COOKIE"]


def refresh_cookie_name() -> str:
    """Return the cookie's name: `__Host-` needs the path `/`, `__Secure-` otherwise."""
    return _cookie_prefix() + COOKIE_BASENAME


def device_cookie_name() -> str:
    """Return the device token cookie's name, prefixed as the refresh cookie's."""
    return _cookie_prefix() + DEVICE_COOKIE_BASENAME


def _cookie_prefix() -> str:
    root = settings.GATEHOUSE["REFRESH_TOKEN_COOKIE_PATH"] == "/"  # noqa: S105 (a path, not a secret)
    return "__Host-" if root else "__Secure-"


def refresh_token_from_request(request, argument: str | None) -> str:
    """Return the refresh token a mutation acts on: its argument, else (cookie mode) the cookie.

    Raises Unauthenticated when there is neither, and Forbidden when the cookie comes
    with a request from a page that is not allowed to use it (CSRF).
    """
    if argument is not None:
        return argument
    if not cookie_mode():
        raise Unauthenticated("Give the refresh token as `refreshToken`.")
    token = request.COOKIES.get(refresh_cookie_name())
    if not token:
        raise Unauthenticated("No refresh token was given and no refresh token cookie was sent.")
    request_origin_check(request)
    return token


def request_origin_check(request) -> None:
    """Refuse a cookie-authenticated request unless its Origin is allowed (CSRF defence).

    Browsers send `Origin` on every cross-origin request and on same-origin POSTs; a
    request without one, or with `null` (sandboxed frames, some redirects), is refused.
    """
    origin = request.META.get("HTTP_ORIGIN")
    if not origin or origin not in _allowed_origins(request):
        raise Forbidden("This request may not use the refresh token cookie: its origin is not allowed.")


def _allowed_origins(request) -> set[str]:
    return {*settings.CORS_ALLOWED_ORIGINS, f"{request.scheme}://{request.get_host()}"}


def refresh_token_deliver(request, tokens: SessionTokens) -> str | None:
    """Return the refresh token for the response body: None in cookie mode, which sets the cookie."""
    if not cookie_mode():
        return tokens.refresh_token
    setattr(request, _PENDING, ("set", tokens.refresh_token, tokens.refresh_expires_in))
    return None


def refresh_cookie_clear(request) -> None:
    """Delete the refresh token cookie with the response (whatever the mode: harmless)."""
    setattr(request, _PENDING, ("delete",))


def refresh_cookie_after_failure(request, error: AuthError, *, from_cookie: bool) -> None:
    """Delete a refresh cookie that can never work again (revoked, expired, unknown).

    A token used moments ago is kept: another tab won the race and its response sets
    the new cookie.
    """
    if from_cookie and not isinstance(error, RefreshTokenAlreadyUsed):
        refresh_cookie_clear(request)


def refresh_cookie_after_logout(request, *, from_cookie: bool) -> None:
    """Delete the cookie of a session being signed out (whether or not it was still live)."""
    if from_cookie:
        refresh_cookie_clear(request)


def refresh_cookie_apply(request, response) -> None:
    """Write the cookie change a mutation asked for onto the response."""
    pending = getattr(request, _PENDING, None)
    if pending is None:
        return
    config = settings.GATEHOUSE
    name, path = refresh_cookie_name(), config["REFRESH_TOKEN_COOKIE_PATH"]
    samesite = config["REFRESH_TOKEN_COOKIE_SAMESITE"]
    if pending[0] == "delete":
        response.delete_cookie(name, path=path, samesite=samesite)
        # delete_cookie sets Secure only for __Secure-/__Host- names, which ours always are.
        return
    _, value, expires_at = pending
    _set_protected_cookie(response, name, value, max_age=max(0, expires_at - int(time.time())))


def _set_protected_cookie(response, name: str, value: str, *, max_age: int) -> None:
    """Set one of Gatehouse's cookies: HttpOnly, Secure, SameSite, on the GraphQL path, no Domain."""
    config = settings.GATEHOUSE
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=config["REFRESH_TOKEN_COOKIE_PATH"],
        secure=True,
        httponly=True,
        samesite=config["REFRESH_TOKEN_COOKIE_SAMESITE"],
    )


def device_token_deliver(request, token: str) -> str | None:
    """Return the device token for the response body: None in cookie mode, which sets the cookie."""
    if not cookie_mode():
        return token
    setattr(request, _DEVICE_PENDING, token)
    return None


def device_token_from_request(request, argument: str | None) -> str | None:
    """Return the device token a sign-in presents: its argument, else (cookie mode) the cookie, else None.

    No origin check: the device cookie authenticates nothing, it only chooses which
    budget a sign-in attempt is counted against, and it is bound to one account.
    """
    if argument is not None:
        return argument
    if not cookie_mode():
        return None
    return request.COOKIES.get(device_cookie_name()) or None


def device_cookie_apply(request, response) -> None:
    """Write the device token cookie a sign-in asked for onto the response (as long-lived as the token)."""
    token = getattr(request, _DEVICE_PENDING, None)
    if token is None:
        return
    _set_protected_cookie(response, device_cookie_name(), token, max_age=settings.DEVICE_TOKEN_LIFETIME)
