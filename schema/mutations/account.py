"""Account mutations: registration, email verification, passwords, profile and deletion.

Each returns `errors: [UserError!]!` (nothing is written when it is not empty) and, where
there is nothing else to return, `success`. Names follow django-graphql-auth, so that its
clients can move over.
"""

import graphene
from django.core.exceptions import ValidationError
from graphene.types.generic import GenericScalar

from accounts.services import (
    account_delete,
    account_update,
    account_verification_resend,
    account_verify,
    password_change,
    password_reset,
    password_reset_request,
    user_register,
)
from schema.errors import UserError, user_errors_from
from schema.mutations.common import (
    REFRESH_TOKEN_OUT,
    refresh_expires_at_field,
    refresh_expires_in_field,
    session_tokens_payload,
)
from schema.types import UserType
from schema.viewer import viewer_required, viewer_session_id


def _errors_field(description="Why the input was refused; empty on success."):
    return graphene.List(graphene.NonNull(UserError), required=True, description=description)


def _success_field(description="True when it was done; false when `errors` is not empty."):
    return graphene.Boolean(required=True, description=description)


class Register(graphene.Mutation):
    """Create an account, send it a verification email, and sign it in.

    Refused input comes back in `errors` (and nothing is written); too many registrations
    from one address is a top-level RATE_LIMITED error. When unverified accounts may not
    sign in (ACCOUNT_ALLOW_UNVERIFIED_LOGIN=false), the tokens are null until the email
    address is confirmed.
    """

    class Arguments:
        username = graphene.String(
            required=True, description="Public handle: letters, digits and @ . + - _, unique ignoring case."
        )
        email = graphene.String(required=True, description="Login address; stored lowercased, unique.")
        password = graphene.String(required=True, description="Checked by the password validators.")

    user = graphene.Field(UserType, description="The new account; null when `errors` is not empty.")
    token = graphene.String(description="Access token for the new session; null when `errors` is not empty.")
    payload = GenericScalar(description="The access token's claims; null when `errors` is not empty.")
    refresh_token = graphene.String(description=REFRESH_TOKEN_OUT)
    refresh_expires_in = refresh_expires_in_field()
    refresh_expires_at = refresh_expires_at_field(required=False)
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, username, email, password):
        try:
            user, tokens = user_register(request=info.context, username=username, email=email, password=password)
        except ValidationError as exc:
            return cls(errors=user_errors_from(exc))
        if tokens is None:
            return cls(user=user, errors=[])
        return cls(user=user, errors=[], **session_tokens_payload(info, tokens))


class VerifyAccount(graphene.Mutation):
    """Confirm an email address with the token from a verification email.

    For a new account this marks the address verified; after `updateAccount(email:)` it
    makes the new address the account's own. A token that is unknown, used, expired or
    superseded is `errors: [{field: "token", code: INVALID_TOKEN}]`.
    """

    class Arguments:
        token = graphene.String(required=True, description="The `token` parameter of the link in the email.")

    success = _success_field()
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, token):
        try:
            account_verify(request=info.context, token=token)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


class ResendActivationEmail(graphene.Mutation):
    """Send a new verification email to an unverified account.

    Answers `success: true` whether or not the address has an account (so it reveals
    nothing); only a malformed address is an error.
    """

    class Arguments:
        email = graphene.String(required=True, description="The account's email address.")

    success = _success_field()
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, email):
        try:
            account_verification_resend(request=info.context, email=email)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


class SendPasswordResetEmail(graphene.Mutation):
    """Email a one-time password reset link to an account.

    Answers `success: true` whether or not the address has an account, in the same time
    (so it reveals nothing); only a malformed address is an error.
    """

    class Arguments:
        email = graphene.String(required=True, description="The account's email address.")

    success = _success_field()
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, email):
        try:
            password_reset_request(request=info.context, email=email)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


class PasswordReset(graphene.Mutation):
    """Set a new password with the token from a reset email; every session of the account ends.

    The token works once, and stops working after any password change or a newer reset
    request (`errors: [{field: "token", code: INVALID_TOKEN}]`).
    """

    class Arguments:
        token = graphene.String(required=True, description="The `token` parameter of the link in the email.")
        new_password = graphene.String(required=True, description="Checked by the password validators.")

    success = _success_field()
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, token, new_password):
        try:
            password_reset(request=info.context, token=token, new_password=new_password)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


class PasswordChange(graphene.Mutation):
    """Change your password. Every other session ends; this one gets fresh tokens.

    A wrong `oldPassword` is `errors: [{field: "oldPassword", code: INVALID_PASSWORD}]`.
    """

    class Arguments:
        old_password = graphene.String(required=True, description="Your current password.")
        new_password = graphene.String(required=True, description="Checked by the password validators.")

    success = _success_field()
    errors = _errors_field()
    token = graphene.String(description="A new access token of this session; null when `errors` is not empty.")
    payload = GenericScalar(description="The new access token's claims.")
    refresh_token = graphene.String(description=REFRESH_TOKEN_OUT)
    refresh_expires_in = refresh_expires_in_field()
    refresh_expires_at = refresh_expires_at_field(required=False)

    @classmethod
    def mutate(cls, root, info, old_password, new_password):
        user = viewer_required(info)
        try:
            tokens = password_change(
                request=info.context,
                user=user,
                session_id=viewer_session_id(info),
                old_password=old_password,
                new_password=new_password,
            )
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[], **session_tokens_payload(info, tokens))


class UpdateAccount(graphene.Mutation):
    """Change your username, or ask to change your email address.

    The username changes at once (same rules as registration). A new email address needs
    your current `password`; it is sent a confirmation link (and the old one a notice),
    and replaces the old address only when `verifyAccount` is called with that link's
    token. A password change or reset cancels a pending change.
    """

    class Arguments:
        username = graphene.String(description="A new username.")
        email = graphene.String(description="A new email address, to be confirmed; needs `password`.")
        password = graphene.String(description="Your current password: required to change the email address.")

    success = _success_field()
    errors = _errors_field()
    user = graphene.Field(UserType, description="Your account as it now is.")
    pending_email = graphene.String(description="The new address waiting for confirmation, if one was asked for.")

    @classmethod
    def mutate(cls, root, info, username=None, email=None, password=None):
        user = viewer_required(info)
        try:
            user, pending = account_update(
                request=info.context,
                user=user,
                session_id=viewer_session_id(info),
                username=username,
                email=email,
                password=password,
            )
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc), user=user)
        return cls(success=True, errors=[], user=user, pending_email=pending)


class DeleteAccount(graphene.Mutation):
    """Delete your account after confirming your password. Every session ends.

    A wrong password is `errors: [{field: "password", code: INVALID_PASSWORD}]`.
    """

    class Arguments:
        password = graphene.String(required=True, description="Your current password.")

    success = _success_field()
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, password):
        user = viewer_required(info)
        try:
            account_delete(request=info.context, user=user, password=password, session_id=viewer_session_id(info))
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])
