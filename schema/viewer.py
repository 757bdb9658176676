"""Who is asking: the request's Bearer authentication, as resolvers see it."""

from accounts.exceptions import Unauthenticated


def viewer(info):
    """Return the authenticated user, or None when the request carries no token or a service token.

    Raises the request's token error (TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_REVOKED): a
    request that sent a bad token is never served as anonymous.
    """
    auth = getattr(info.context, "auth", None)
    return auth.get_user() if auth is not None else None


def viewer_required(info):
    """Return the authenticated user; raise UNAUTHENTICATED for an anonymous request."""
    user = viewer(info)
    if user is None:
        raise Unauthenticated
    return user


def viewer_session_id(info) -> str:
    """Return the id of the session the request's access token belongs to (call after viewer_required)."""
    return info.context.auth.claims.session_id


def service_caller(info):
    """Return the service client calling with its token (a ServiceCaller), or None.

    None for a user's token and an anonymous request. Raises the request's token error,
    as `viewer` does.
    """
    auth = getattr(info.context, "auth", None)
    return auth.get_caller() if auth is not None else None
