"""Sign-in, tokens and sessions. Each mutation unpacks, calls one service, translates errors, returns.

Names and payload fields follow django-graphql-jwt (`tokenAuth`, `verifyToken`,
`refreshToken`, `revokeToken`, `deleteRefreshTokenCookie`; `token`, `payload`,
`refreshToken`, `refreshExpiresIn`) so that its clients can move over unchanged.
"""

import graphene
from django.core.exceptions import ValidationError
from graphene.types.generic import GenericScalar

from accounts.cookies import (
    cookie_mode,
    device_token_deliver,
    device_token_from_request,
    refresh_cookie_after_failure,
    refresh_cookie_after_logout,
    refresh_cookie_clear,
    refresh_cookie_name,
    refresh_token_from_request,
)
from accounts.exceptions import AuthError
from accounts.models import SessionEndReason
from accounts.selectors import access_token_check
from accounts.services import (
    refresh_token_revoke,
    refresh_token_rotate,
    session_revoke,
    session_revoke_all,
    user_authenticate,
)
from schema.errors import RequestErrorCode, UserError, coded_error, user_errors_from
from schema.mutations.common import (
    REFRESH_TOKEN_IN,
    REFRESH_TOKEN_OUT,
    refresh_expires_at_field,
    refresh_expires_in_field,
    session_tokens_payload,
)
from schema.types import SessionType, UserType, object_id_of, session_uuid
from schema.viewer import viewer_required


class TokenAuth(graphene.Mutation):
    """Sign in with email (or username) and password, and get an access token.

    Any failure, whatever its cause, is the top-level error INVALID_CREDENTIALS; too many
    attempts is RATE_LIMITED with `extensions.retryAfter` seconds. A device that signed in
    before sends its `deviceToken`: its attempts then count against its own budget, so
    guesses from elsewhere never lock it out.
    """

    class Arguments:
        email = graphene.String(description="The account's email address (any case). Give this or `username`.")
        username = graphene.String(description="The account's username (any case), in place of `email`.")
        password = graphene.String(required=True, description="The account's password.")
        device_token = graphene.String(
            description="The `deviceToken` this device got at its last sign-in to this account, if any "
            "(in cookie mode, omit it: the cookie is read)."
        )

    token = graphene.String(required=True, description="Access token: send it as `Authorization: Bearer <token>`.")
    payload = GenericScalar(required=True, description="The access token's claims.")
    refresh_token = graphene.String(description=REFRESH_TOKEN_OUT)
    refresh_expires_in = refresh_expires_in_field()
    refresh_expires_at = refresh_expires_at_field(required=True)
    device_token = graphene.String(
        description="Keep it on this device and send it with its next sign-in to this account (OWASP device "
        "cookie). Null in cookie mode, where it is a cookie."
    )
    user = graphene.Field(UserType, required=True, description="The signed-in account.")

    @classmethod
    def mutate(cls, root, info, password, email=None, username=None, device_token=None):
        if (email is None) == (username is None):
            raise coded_error("Give either `email` or `username`, not both.", RequestErrorCode.BAD_USER_INPUT)
        user, tokens = user_authenticate(
            request=info.context,
            email=email,
            username=username,
            password=password,
            device_token=device_token_from_request(info.context, device_token),
        )
        return cls(
            user=user,
            device_token=device_token_deliver(info.context, tokens.device_token),
            **session_tokens_payload(info, tokens),
        )


class Verify(graphene.Mutation):
    """Check an access token as a request would: signature, claims, session and account.

    Any failure is the top-level error TOKEN_INVALID, TOKEN_EXPIRED or TOKEN_REVOKED.
    """

    class Arguments:
        token = graphene.String(required=True, description="An access token.")

    payload = GenericScalar(required=True, description="The token's claims.")

    @classmethod
    def mutate(cls, root, info, token):
        return cls(payload=access_token_check(token))


class Refresh(graphene.Mutation):
    """Exchange a refresh token for a new access token and a new refresh token.

    The presented refresh token is used up. Presenting it again within a few seconds is
    refused (TOKEN_INVALID) and harmless; later, it is taken for a stolen copy and the
    whole session ends (TOKEN_REVOKED). An ended session or account is TOKEN_REVOKED, an
    expired session TOKEN_EXPIRED.
    """

    class Arguments:
        refresh_token = graphene.String(description=REFRESH_TOKEN_IN)

    token = graphene.String(required=True, description="A new access token of the same session.")
    payload = GenericScalar(required=True, description="The new access token's claims.")
    refresh_token = graphene.String(description=REFRESH_TOKEN_OUT)
    refresh_expires_in = refresh_expires_in_field()
    refresh_expires_at = refresh_expires_at_field(required=True)

    @classmethod
    def mutate(cls, root, info, refresh_token=None):
        presented = refresh_token_from_request(info.context, refresh_token)
        try:
            _user, tokens = refresh_token_rotate(refresh_token=presented, request=info.context)
        except AuthError as exc:
            refresh_cookie_after_failure(info.context, exc, from_cookie=refresh_token is None)
            raise
        return cls(**session_tokens_payload(info, tokens))


class Revoke(graphene.Mutation):
    """Sign out: end the session a refresh token belongs to, with all of its tokens.

    Its access tokens fail with TOKEN_REVOKED from the next request on.
    """

    class Arguments:
        refresh_token = graphene.String(description=REFRESH_TOKEN_IN)

    revoked = graphene.Int(required=True, description="Unix time at which the session ended.")

    @classmethod
    def mutate(cls, root, info, refresh_token=None):
        presented = refresh_token_from_request(info.context, refresh_token)
        refresh_cookie_after_logout(info.context, from_cookie=refresh_token is None)
        session = refresh_token_revoke(refresh_token=presented, request=info.context)
        return cls(revoked=int(session.revoked_at.timestamp()))


class LogoutAll(graphene.Mutation):
    """Sign out everywhere: end every session of the signed-in user, this one included."""

    success = graphene.Boolean(required=True, description="True when every session has ended.")
    revoked_sessions = graphene.Int(required=True, description="How many live sessions were ended.")

    @classmethod
    def mutate(cls, root, info):
        user = viewer_required(info)
        count = session_revoke_all(user=user, reason=SessionEndReason.LOGOUT_ALL, request=info.context)
        if cookie_mode():
            refresh_cookie_clear(info.context)
        return cls(success=True, revoked_sessions=count)


class RevokeSession(graphene.Mutation):
    """End one of your own sessions (another device), by the `id` that `me { sessions }` lists."""

    class Arguments:
        id = graphene.ID(required=True, description="The session's global ID.")

    success = graphene.Boolean(required=True, description="True when the session has ended.")
    errors = graphene.List(
        graphene.NonNull(UserError), required=True, description="Why nothing was ended; empty on success."
    )

    @classmethod
    def mutate(cls, root, info, id):
        user = viewer_required(info)
        try:
            session_revoke(user=user, session_id=_session_id_from_global_id(id), request=info.context)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


def _session_id_from_global_id(global_id: str):
    return session_uuid(object_id_of(global_id, SessionType))


class DeleteRefreshTokenCookie(graphene.Mutation):
    """Delete the refresh token cookie (cookie mode). It does not end the session: `revokeToken` does."""

    deleted = graphene.Boolean(required=True, description="Whether the request carried the cookie.")

    @classmethod
    def mutate(cls, root, info):
        refresh_cookie_clear(info.context)
        return cls(deleted=refresh_cookie_name() in info.context.COOKIES)
