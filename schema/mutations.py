"""Root mutation fields. Each one unpacks, calls one service, translates errors, returns."""

import graphene
from django.core.exceptions import ValidationError
from graphene.types.generic import GenericScalar

from accounts.services import user_authenticate, user_register
from schema.errors import RequestErrorCode, UserError, coded_error, user_errors_from
from schema.types import UserType


class Register(graphene.Mutation):
    """Create an account and sign it in.

    Refused input comes back in `errors` (and nothing is written); too many registrations
    from one address is a top-level RATE_LIMITED error.
    """

    class Arguments:
        username = graphene.String(
            required=True, description="Public handle: letters, digits and @ . + - _, unique ignoring case."
        )
        email = graphene.String(required=True, description="Login address; stored lowercased, unique.")
        password = graphene.String(required=True, description="Checked by the password validators.")

    user = graphene.Field(UserType, description="The new account; null when `errors` is not empty.")
    token = graphene.String(description="Access token for the new account; null when `errors` is not empty.")
    errors = graphene.List(
        graphene.NonNull(UserError), required=True, description="Why the input was refused; empty on success."
    )

    @classmethod
    def mutate(cls, root, info, username, email, password):
        try:
            user, tokens = user_register(request=info.context, username=username, email=email, password=password)
        except ValidationError as exc:
            return cls(errors=user_errors_from(exc))
        return cls(user=user, token=tokens.token, errors=[])


class TokenAuth(graphene.Mutation):
    """Sign in with email (or username) and password, and get an access token.

    Any failure, whatever its cause, is the top-level error INVALID_CREDENTIALS; too many
    attempts is RATE_LIMITED with `extensions.retryAfter` seconds.
    """

    class Arguments:
        email = graphene.String(description="The account's email address (any case). Give this or `username`.")
        username = graphene.String(description="The account's username (any case), in place of `email`.")
        password = graphene.String(required=True, description="The account's password.")

    token = graphene.String(required=True, description="Access token: send it as `Authorization: Bearer <token>`.")
    payload = GenericScalar(required=True, description="The access token's claims.")
    refresh_expires_in = graphene.Int(
        required=True, description="Unix time after which this sign-in can no longer be renewed."
    )
    user = graphene.Field(UserType, required=True, description="The signed-in account.")

    @classmethod
    def mutate(cls, root, info, password, email=None, username=None):
        if (email is None) == (username is None):
            raise coded_error("Give either `email` or `username`, not both.", RequestErrorCode.BAD_USER_INPUT)
        user, tokens = user_authenticate(request=info.context, email=email, username=username, password=password)
        return cls(user=user, **tokens.as_payload())


class Mutation(graphene.ObjectType):
    """Create accounts and sign in."""

    register = Register.Field(description="Create an account and sign it in.")
    token_auth = TokenAuth.Field(description="Sign in and get an access token.")
