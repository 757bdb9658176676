"""Passwords: confirm, change, reset by email, and set from outside the user's flows (the admin)."""

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.error_codes import UserErrorCode
from accounts.exceptions import TokenRevoked
from accounts.models import AccountTokenPurpose, AuthEventKind, RefreshToken, Session, SessionEndReason, User
from accounts.services.account_tokens import (
    account_token_limits,
    account_token_use,
    account_tokens_revoke,
    link_send,
)
from accounts.services.audit import auth_event_record
from accounts.services.inputs import required
from accounts.services.locking import user_locked
from accounts.services.registration import after_response_for_address
from accounts.services.sessions import session_revoke_all, session_tokens
from accounts.services.signin import password_check_count
from accounts.tokens import SessionTokens


def password_validated(password: str | None, *, user: User, field: str) -> str:
    """Return `password` if the validators accept it for `user`; raise ValidationError keyed by `field`."""
    try:
        required(password, "Choose a password.")
        password_validation.validate_password(password, user=user)
    except ValidationError as exc:
        raise ValidationError({field: exc}) from None
    return password


def password_confirmed(*, user: User, password: str | None, field: str) -> None:
    """Check a signed-in user's current password; raise ValidationError (INVALID_PASSWORD).

    The caller has counted the check (password_check_count) before its transaction.
    """
    wrong = ValidationError(
        {field: ValidationError("The password is not correct.", code=UserErrorCode.INVALID_PASSWORD.value)}
    )
    if not password or len(password) > settings.PASSWORD_MAX_LENGTH:
        raise wrong
    if not user.check_password(password):
        raise wrong


def password_reset_request(*, request, email: str) -> None:
    """Email a one-time reset link if `email` names an active account.

    Answers the same, with the same work in the request, whether or not it does: the
    lookup, the token and the mail happen after the response (see accounts.mail).
    Raises ValidationError for a malformed address and RateLimited when the client or
    the recipient has had enough.
    """
    after_response_for_address(request=request, email=email, job=_password_reset_send, name="password reset request")


@transaction.atomic
def _password_reset_send(email: str, facts: dict) -> None:
    # Read under the account's lock: a deletion, deactivation or email change that commits
    # meanwhile is seen, and none can remove the row the new link will refer to.
    user = User.objects.select_for_update(no_key=True).filter(email=email, is_active=True).first()
    if user is not None and not user.has_usable_password():
        # As Django's PasswordResetForm: an administrator disabled password sign-in, and
        # whoever reads the mailbox must not undo that.
        user = None
    if user is not None:
        link_send(
            user=user,
            email=user.email,
            purpose=AccountTokenPurpose.RESET_PASSWORD,
            lifetime=settings.PASSWORD_RESET_TOKEN_LIFETIME,
            template="reset_password",
            path="reset-password",
        )
    auth_event_record(
        kind=AuthEventKind.PASSWORD_RESET_REQUESTED,
        facts=facts,
        user=user,
        identifier=email,
        detail="" if user is not None else "no such account",
    )


def password_reset(*, request, token: str, new_password: str) -> User:
    """Set a new password with a reset link; end every session of the account.

    The link is one-time and state-bound: dead after use, after any password change and
    after a newer reset. Opening it proves the mailbox, so the address counts as
    verified. Raises ValidationError (`token` INVALID_TOKEN, `newPassword` validators)
    and changes nothing then.
    """
    account_token_limits(request=request)
    with transaction.atomic():
        user = account_token_use(token=token, purposes=(AccountTokenPurpose.RESET_PASSWORD,)).user
        password_validated(new_password, user=user, field="new_password")
        user.set_password(new_password)
        user.is_email_verified = True  # the link reached this very address
        user.save(update_fields=["password", "is_email_verified"])
        # Every other emailed link dies too, a pending email change included: whoever took
        # the account must not keep a way back in.
        account_tokens_revoke(user=user)
        session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_RESET, request=request)
        auth_event_record(kind=AuthEventKind.PASSWORD_RESET, request=request, user=user)
    return user


def password_change(*, request, user: User, session_id: str, old_password: str, new_password: str) -> SessionTokens:
    """Change a signed-in user's password; end every other session; renew this one's tokens.

    Raises ValidationError (`oldPassword` INVALID_PASSWORD, `newPassword` validators),
    RateLimited (the session's password checks), and TokenRevoked when the session or
    the account ended while the request was on its way; nothing changes then. Returns a
    new access token and a new refresh token of the current session; its earlier
    refresh token stops working.
    """
    password_check_count(session_id=session_id)
    with transaction.atomic():
        user = user_locked(user)
        session = (
            Session.objects.select_for_update(no_key=True)
            .filter(pk=session_id, user=user, revoked_at__isnull=True)
            .first()
        )
        if session is None:
            # Ended (a reset, a logout elsewhere) while this request was on its way.
            raise TokenRevoked
        errors = {}
        for check in (
            lambda: password_confirmed(user=user, password=old_password, field="old_password"),
            lambda: password_validated(new_password, user=user, field="new_password"),
        ):
            try:
                check()
            except ValidationError as exc:
                errors.update(exc.error_dict)
        if errors:
            raise ValidationError(errors)
        user.set_password(new_password)
        user.save(update_fields=["password"])
        session_revoke_all(
            user=user, reason=SessionEndReason.PASSWORD_CHANGE, keep_session_id=session_id, request=request
        )
        account_tokens_revoke(user=user)
        # The session's refresh token goes too: whoever else holds it cannot carry on.
        RefreshToken.objects.filter(session=session, used_at__isnull=True).delete()
        now = timezone.now()
        session.last_used_at = now
        Session.objects.filter(pk=session.pk).update(last_used_at=now)
        auth_event_record(kind=AuthEventKind.PASSWORD_CHANGED, request=request, user=user, session_id=session.pk)
        return session_tokens(session=session, user=user, now=now)


def password_set(*, user: User, password: str | None, request=None) -> int:
    """Set (or, with None, disable) a password outside the user's own flows; end every session.

    For the admin's password form and `manage.py changepassword`: whoever held the
    account's tokens is signed out, in the same transaction. Returns how many sessions
    ended. The caller has run the validators (Django's forms and command do). Raises
    TokenRevoked when the account no longer exists.
    """
    with transaction.atomic():
        locked = user_locked(user)
        if password is None:
            locked.set_unusable_password()
        else:
            locked.set_password(password)
        locked.save(update_fields=["password"])
        user.password = locked.password
        account_tokens_revoke(user=locked)
        ended = session_revoke_all(user=locked, reason=SessionEndReason.PASSWORD_CHANGE, request=request)
        auth_event_record(
            kind=AuthEventKind.PASSWORD_CHANGED, request=request, user=locked, detail="set by an administrator"
        )
    return ended
