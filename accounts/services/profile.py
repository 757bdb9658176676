"""A signed-in user's profile changes and account deletion."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.error_codes import UserErrorCode
from accounts.mail import mail_send_on_commit
from accounts.models import AccountToken, AuthEventKind, SessionEndReason, User
from accounts.selectors import email_taken, username_taken
from accounts.services.account_tokens import account_email_limits, verification_send
from accounts.services.audit import auth_event_record
from accounts.services.inputs import required, taken
from accounts.services.locking import user_locked, users_locked
from accounts.services.passwords import password_confirmed
from accounts.services.registration import registration_count
from accounts.services.sessions import session_revoke_all
from accounts.services.signin import password_check_count
from accounts.session_cache import users_changed
from accounts.validators import DELETED_EMAIL_DOMAIN, canonical_email, canonical_username


def account_update(
    *,
    request,
    user: User,
    session_id,
    username: str | None = None,
    email: str | None = None,
    password: str | None = None,
) -> tuple[User, str | None]:
    """Change a signed-in user's username and ask to change their email.

    Returns the account as it now is and the address waiting for confirmation, if any.

    The username changes at once, with the registration rules. A new email address needs
    the current `password` (a stolen access token must not be able to move the account
    to another mailbox; the check counts as password_check_count says) and replaces the
    old one only once confirmed: a link goes to the new address, a notice to the old
    one, and `verifyAccount` makes the change; a password change or reset cancels it.
    Every call counts against the client address's registration budget before anything
    is looked up (availability answers are as telling as registration's). Raises
    ValidationError keyed by field (nothing changes then), RateLimited, and TokenRevoked
    when the account ended while the request was on its way.
    """
    registration_count(request=request)
    if email is not None and password:
        password_check_count(session_id=session_id)
    with transaction.atomic():
        return _account_update(request=request, user=user, username=username, email=email, password=password)


def _account_update(*, request, user, username, email, password) -> tuple[User, str | None]:
    user = user_locked(user)
    errors: dict[str, ValidationError] = {}
    new_username = new_email = None
    if email is not None:
        if not password:
            message = "Enter your current password to change your email address."
            raise ValidationError({"password": ValidationError(message, code=UserErrorCode.REQUIRED.value)})
        password_confirmed(user=user, password=password, field="password")
    if username is not None:
        try:
            new_username = canonical_username(required(username, "Choose a username."))
            if username_taken(new_username, exclude=user):
                raise taken("username")
        except ValidationError as exc:
            errors["username"] = exc
    if email is not None:
        try:
            new_email = canonical_email(required(email, "Enter your email address."))
            if new_email != user.email:
                # Counted only once the password is known to be right: mails are what it
                # limits, and a rolled-back change sends none.
                account_email_limits(request=request, recipient=new_email)
            if email_taken(new_email, exclude=user):
                raise taken("email")
        except ValidationError as exc:
            errors["email"] = exc
    if errors:
        raise ValidationError(errors)
    if new_username is not None and new_username != user.username:
        old_username, user.username = user.username, new_username
        try:
            with transaction.atomic():
                user.save(update_fields=["username"])
        except IntegrityError:
            user.username = old_username
            raise ValidationError({"username": taken("username")}) from None
        auth_event_record(kind=AuthEventKind.USERNAME_CHANGED, request=request, user=user)
    if new_email is None or new_email == user.email:
        return user, None
    verification_send(user=user, email=new_email, change=True)
    mail_send_on_commit(
        template="email_change_notice", to=user.email, context={"username": user.username, "old_email": user.email}
    )
    auth_event_record(kind=AuthEventKind.EMAIL_CHANGE_REQUESTED, request=request, user=user)
    return user, new_email


def account_delete(*, request, user: User, session_id, password: str) -> None:
    """Delete a signed-in user's account after confirming the password; end every session.

    With ACCOUNT_DELETION = "deactivate" the row stays (deactivated, its username and
    email replaced by placeholders, no usable password) so the address is free again
    either way and a new account there inherits nothing. The password check counts
    against the session's budget (see password_check_count). Raises ValidationError (`password` INVALID_PASSWORD),
    RateLimited, and TokenRevoked when the account is already gone; nothing changes then.
    """
    password_check_count(session_id=session_id)
    with transaction.atomic():
        user = user_locked(user)
        password_confirmed(user=user, password=password, field="password")
        session_revoke_all(user=user, reason=SessionEndReason.ACCOUNT_DELETED, request=request)
        auth_event_record(kind=AuthEventKind.ACCOUNT_DELETED, request=request, user=user)
        if settings.ACCOUNT_DELETION == "deactivate":
            # Placeholders no registration can take first: a colon is never in a username,
            # and a single-label domain is never a valid email address.
            user.username = f"deleted:{user.pk}"
            user.email = f"deleted-{user.pk}@{DELETED_EMAIL_DOMAIN}"
            user.set_unusable_password()
            user.is_active = False
            user.is_email_verified = False
            user.save(update_fields=["username", "email", "password", "is_active", "is_email_verified"])
            AccountToken.objects.filter(user=user).delete()
            return
        user_id = user.pk
        user.delete()
        users_changed([user_id])


@transaction.atomic
def users_delete(*, user_ids, request=None, actor: User | None = None) -> int:
    """Delete accounts as an administrator (the admin's delete page and action); return how many.

    The accounts (and the administrator's, which the admin's log entry refers to) are
    locked first, in id order, so no sign-in or emailed link can add a row that refers to
    one being deleted. Each deletion is in the audit trail, naming the administrator.
    """
    users_locked(sorted({*user_ids, *([actor.pk] if actor is not None else [])}))
    users = list(User.objects.filter(pk__in=user_ids).order_by("pk"))
    by_actor = f"by user {actor.pk}" if actor is not None else ""
    for user in users:
        auth_event_record(kind=AuthEventKind.ACCOUNT_DELETED, request=request, user=user, detail=by_actor)
    User.objects.filter(pk__in=[user.pk for user in users]).delete()
    users_changed([user.pk for user in users])
    return len(users)
