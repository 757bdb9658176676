"""What a service token may do to accounts (the `users:write` scope), and the guard that keeps
service tokens out of every other mutation.

Each mutation unpacks, calls one service (accounts.services.service_actions), translates
errors, returns. An unknown or malformed `id` is `errors: [{field: "id", code: NOT_FOUND}]`.
"""

from functools import wraps

import graphene
from django.core.exceptions import ValidationError

from accounts.exceptions import Forbidden, Unauthenticated
from accounts.services import client_user_deactivate, client_user_sessions_revoke
from schema.errors import UserError, user_errors_from
from schema.types import UserType, object_id_of
from schema.viewer import service_caller, viewer


def _caller_required(info):
    """Return the service caller; UNAUTHENTICATED without a token, FORBIDDEN for a user's token."""
    caller = service_caller(info)
    if caller is None:
        # A user's token holds no scope: FORBIDDEN; no token at all: UNAUTHENTICATED.
        raise Unauthenticated if viewer(info) is None else Forbidden
    return caller


def _user_id_from_global_id(global_id: str) -> int | None:
    try:
        return int(object_id_of(global_id, UserType))
    except (TypeError, ValueError):
        return None


def _errors_field():
    return graphene.List(
        graphene.NonNull(UserError), required=True, description="Why nothing was done; empty on success."
    )


class RevokeUserSessions(graphene.Mutation):
    """End every session of a user at once (service tokens with `users:write`).

    The user's access tokens fail with TOKEN_REVOKED from the next request on, and their
    refresh tokens too. Audited with the calling client as the actor. Without
    `users:write` (or with a user's token) it is FORBIDDEN.
    """

    class Arguments:
        id = graphene.ID(required=True, description="The user's global ID.")

    success = graphene.Boolean(required=True, description="True when every session has ended.")
    revoked_sessions = graphene.Int(required=True, description="How many live sessions were ended.")
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, id):
        caller = _caller_required(info)
        try:
            count = client_user_sessions_revoke(
                caller=caller, user_id=_user_id_from_global_id(id), request=info.context
            )
        except ValidationError as exc:
            return cls(success=False, revoked_sessions=0, errors=user_errors_from(exc))
        return cls(success=True, revoked_sessions=count, errors=[])


class DeactivateUser(graphene.Mutation):
    """Deactivate a user's account and end all of its sessions (service tokens with `users:write`).

    The account can no longer sign in and its tokens fail with TOKEN_REVOKED from the next
    request on. Deactivating an inactive account succeeds and changes nothing. Audited
    with the calling client as the actor. Without `users:write` (or with a user's token)
    it is FORBIDDEN.
    """

    class Arguments:
        id = graphene.ID(required=True, description="The user's global ID.")

    success = graphene.Boolean(required=True, description="True when the account is deactivated.")
    errors = _errors_field()

    @classmethod
    def mutate(cls, root, info, id):
        caller = _caller_required(info)
        try:
            client_user_deactivate(caller=caller, user_id=_user_id_from_global_id(id), request=info.context)
        except ValidationError as exc:
            return cls(success=False, errors=user_errors_from(exc))
        return cls(success=True, errors=[])


def service_tokens_refused(resolver):
    """Wrap a mutation's resolver so that a service token's request is FORBIDDEN before it runs.

    Every mutation but the service ones acts for a person (or for nobody: sign-in,
    registration, emailed links) and no scope grants it, so a service token is refused
    here by default, including for mutations added later; a token error (revoked,
    expired) comes first.
    """

    @wraps(resolver)
    def guarded(root, info, **arguments):
        auth = getattr(info.context, "auth", None)
        if auth is not None and auth.is_service:
            service_caller(info)  # the token's own error, if it has one
            raise Forbidden("A service token cannot do this.")
        return resolver(root, info, **arguments)

    return guarded
