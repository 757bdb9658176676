"""The root Mutation type: sign-in, tokens and sessions (tokens.py), the account flows (account.py),
and what service tokens may do (service.py)."""

import graphene

from schema.mutations.account import (
    DeleteAccount,
    PasswordChange,
    PasswordReset,
    Register,
    ResendActivationEmail,
    SendPasswordResetEmail,
    UpdateAccount,
    VerifyAccount,
)
from schema.mutations.service import DeactivateUser, RevokeUserSessions, service_tokens_refused
from schema.mutations.tokens import (
    DeleteRefreshTokenCookie,
    LogoutAll,
    Refresh,
    Revoke,
    RevokeSession,
    TokenAuth,
    Verify,
)


class Mutation(graphene.ObjectType):
    """Create and manage accounts, sign in and out, and manage sessions; service tokens may manage users."""

    register = Register.Field(description="Create an account, send a verification email, and sign it in.")
    token_auth = TokenAuth.Field(description="Sign in and get an access token and a refresh token.")
    verify_token = Verify.Field(description="Check an access token: signature, claims, session and account.")
    refresh_token = Refresh.Field(description="Rotate a refresh token: a new access token and a new refresh token.")
    revoke_token = Revoke.Field(description="Sign out the session of a refresh token.")
    logout_all = LogoutAll.Field(description="Sign out every session of the signed-in user.")
    revoke_session = RevokeSession.Field(description="End one of your own sessions.")
    delete_refresh_token_cookie = DeleteRefreshTokenCookie.Field(description="Delete the refresh token cookie.")
    verify_account = VerifyAccount.Field(description="Confirm an email address with the token from an email.")
    resend_activation_email = ResendActivationEmail.Field(description="Send a new verification email.")
    send_password_reset_email = SendPasswordResetEmail.Field(description="Email a one-time password reset link.")
    password_reset = PasswordReset.Field(description="Set a new password with the token from a reset email.")
    password_change = PasswordChange.Field(description="Change your password; other sessions end.")
    update_account = UpdateAccount.Field(description="Change your username or ask to change your email address.")
    delete_account = DeleteAccount.Field(description="Delete your account.")
    revoke_user_sessions = RevokeUserSessions.Field(
        description="End every session of a user (service tokens with `users:write`)."
    )
    deactivate_user = DeactivateUser.Field(
        description="Deactivate a user and end their sessions (service tokens with `users:write`)."
    )


# The only mutations a service token may call; they check its scopes themselves.
SERVICE_MUTATIONS = frozenset({"revoke_user_sessions", "deactivate_user"})


def _refuse_service_tokens(mutation_type) -> None:
    """Guard every other mutation field (those added later too) against service tokens."""
    for name, field in mutation_type._meta.fields.items():
        if name not in SERVICE_MUTATIONS:
            field.resolver = service_tokens_refused(field.resolver)


_refuse_service_tokens(Mutation)
