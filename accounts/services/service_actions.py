"""What a service client may do to accounts through GraphQL, with the `users:write` scope.

Each action is audited with the client as the actor (`identifier` "client:<client_id>"),
beside the entry the session rules write for the sessions that ended, and locks the
account first, as every flow that ends several sessions does (accounts.services.locking).
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.error_codes import UserErrorCode
from accounts.exceptions import TokenRevoked
from accounts.models import AuthEventKind, SessionEndReason, User
from accounts.scopes import USERS_WRITE
from accounts.selectors import ServiceCaller, caller_scope_require
from accounts.services.audit import auth_event_record
from accounts.services.locking import user_locked
from accounts.services.sessions import session_revoke_all, user_deactivate
from accounts.tokens import MAX_USER_ID


def _user_locked_or_not_found(user_id: int | None) -> User:
    """Return the account with its row locked; raise ValidationError (`id`: NOT_FOUND) when there is none."""
    try:
        if user_id is not None and 0 < user_id <= MAX_USER_ID:
            return user_locked(user_id)
    except TokenRevoked:
        pass  # no such account
    raise ValidationError({"id": ValidationError("There is no user with this ID.", code=UserErrorCode.NOT_FOUND.value)})


def _record(caller: ServiceCaller, user: User, *, what: str, count: int, request) -> None:
    auth_event_record(
        kind=AuthEventKind.SESSIONS_ENDED,
        request=request,
        user=user,
        identifier=f"client:{caller.client.client_id}",
        detail=f"{what} by client: {count}",
    )


def client_user_sessions_revoke(*, caller: ServiceCaller, user_id: int | None, request=None) -> int:
    """End every live session of an account at once, for a service client; return how many ended.

    Their access tokens fail with TOKEN_REVOKED on the next request. The sessions record
    SessionEndReason.ADMIN (ended by someone other than their owner). Raises Forbidden
    without `users:write`, and ValidationError (`id`: NOT_FOUND) for an unknown account.
    """
    caller_scope_require(caller, USERS_WRITE)
    with transaction.atomic():
        user = _user_locked_or_not_found(user_id)
        count = session_revoke_all(user=user, reason=SessionEndReason.ADMIN, request=request)
        _record(caller, user, what=SessionEndReason.ADMIN.value, count=count, request=request)
    return count


def client_user_deactivate(*, caller: ServiceCaller, user_id: int | None, request=None) -> int:
    """Deactivate an account and end its sessions, for a service client; return how many ended.

    Deactivating an account that already is one changes nothing and succeeds. Raises
    Forbidden without `users:write`, and ValidationError (`id`: NOT_FOUND) for an unknown
    account.
    """
    caller_scope_require(caller, USERS_WRITE)
    with transaction.atomic():
        user = _user_locked_or_not_found(user_id)
        count = user_deactivate(user=user, request=request)
        _record(caller, user, what=SessionEndReason.DEACTIVATED.value, count=count, request=request)
    return count
