"""The account model: the seed's custom User (username, email, password), done safely."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.error_codes import UserErrorCode
from accounts.validators import (
    EMAIL_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    USERNAME_MAX_LENGTH,
    canonical_email,
    canonical_username,
    username_validator,
)


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, username, email, password, **extra_fields):
        """Create and save a user with the given username, email and password."""
        if not username:
            raise ValueError("Users must have a username.")
        if not email:
            raise ValueError("Users must have an email address.")
        user = self.model(username=username, email=email, **extra_fields)
        user.canonicalize()
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, username, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(username, email, password, **extra_fields)

    def create_superuser(self, username, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        if extra_fields.get("is_staff") is not True:
            raise ValueError("Superuser must have is_staff=True.")
        if extra_fields.get("is_superuser") is not True:
            raise ValueError("Superuser must have is_superuser=True.")
        return self._create_user(username, email, password, **extra_fields)

    def get_by_natural_key(self, email):
        # Login by email finds the account whatever case the address was typed in.
        try:
            email = canonical_email(email)
        except ValidationError:
            raise self.model.DoesNotExist from None
        return self.get(email=email)


class User(AbstractBaseUser, PermissionsMixin):
    """An account: a public username, a login email and a password hash."""

    username = models.CharField(
        max_length=USERNAME_MAX_LENGTH,
        validators=[username_validator],
        help_text="Public handle, unique ignoring case.",
        error_messages={"unique": "A user with that username already exists."},
    )
    email = models.EmailField(
        max_length=EMAIL_MAX_LENGTH,
        unique=True,
        help_text="Login address, stored lowercased.",
        error_messages={"unique": "A user with that email address already exists."},
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Unselect this instead of deleting accounts; inactive accounts cannot sign in.",
    )
    is_staff = models.BooleanField(default=False, help_text="Whether the user can use the admin site.")
    is_email_verified = models.BooleanField(default=False, help_text="Whether the user has confirmed their email.")
    date_joined = models.DateTimeField(default=timezone.now, help_text="When the account was created.")

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            # The database decides uniqueness, so parallel registrations cannot both win.
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_user_username_ci_unique",
                violation_error_code=UserErrorCode.UNIQUE.value,
                violation_error_message="A user with that username already exists.",
            ),
            # Emails are stored canonical (lowercase); this keeps any writer honest.
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")),
                name="accounts_user_email_lowercase",
                violation_error_message="Email addresses are stored lowercased.",
            ),
        ]

    def __str__(self):
        return self.username

    def canonicalize(self, exclude=()):
        """Put username and email in their stored form; raise ValidationError keyed by field."""
        errors = {}
        for field, canonical in (("username", canonical_username), ("email", canonical_email)):
            if field in exclude:
                continue
            try:
                setattr(self, field, canonical(getattr(self, field) or ""))
            except ValidationError as exc:
                errors[field] = exc.error_list
        if errors:
            raise ValidationError(errors)

    def clean_fields(self, exclude=None):
        # Canonical forms on every path that validates (admin forms, createsuperuser), only
        # for the fields a form has not already refused, so each problem is reported once.
        exclude = set(exclude or ())
        errors = {}
        try:
            self.canonicalize(exclude)
        except ValidationError as exc:
            errors = exc.error_dict
        try:
            super().clean_fields(exclude=exclude | set(errors))
        except ValidationError as exc:
            errors = {**errors, **exc.error_dict}
        if errors:
            raise ValidationError(errors)


class SessionEndReason(models.TextChoices):
    """Why a session ended before its expiry; recorded on the session."""

    LOGOUT = "logout", "Signed out"
    LOGOUT_ALL = "logout_all", "Signed out everywhere"
    REVOKED_BY_USER = "revoked_by_user", "Ended by the user from another session"
    REFRESH_TOKEN_REUSE = "refresh_token_reuse", "A used refresh token was presented again"
    PASSWORD_CHANGE = "password_change", "Password changed"
    PASSWORD_RESET = "password_reset", "Password reset"
    DEACTIVATED = "deactivated", "Account deactivated"
    ADMIN = "admin", "Ended by an administrator"
    ACCOUNT_DELETED = "account_deleted", "Account deleted"


class Session(models.Model):
    """One sign-in: what every access and refresh token of that sign-in belongs to.

    Ending it (`revoked_at`) ends all of its tokens on the next request. Its id is random
    (access tokens carry it as `sid`), so sessions cannot be counted or guessed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    created_at = models.DateTimeField(default=timezone.now, help_text="When the user signed in.")
    last_used_at = models.DateTimeField(
        default=timezone.now, help_text="When the session was opened or last refreshed; idle expiry counts from here."
    )
    expires_at = models.DateTimeField(help_text="Absolute expiry: no refresh extends the session past this.")
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True, help_text="The client's address at sign-in.")
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="When the session was ended; null while live.")
    revoked_reason = models.CharField(max_length=32, choices=SessionEndReason.choices, blank=True, default="")
    device_id = models.CharField(
        max_length=32,
        blank=True,
        default="",
        editable=False,
        help_text="The device (accounts.devices) that signed in: the session's password checks count against its "
        "budget. Empty for a session opened otherwise (registration).",
    )

    class Meta:
        verbose_name = "session"
        verbose_name_plural = "sessions"
        indexes = [
            models.Index(fields=["user", "revoked_at"], name="accounts_session_user_live"),
            models.Index(fields=["expires_at"], name="accounts_session_expires"),
            models.Index(fields=["revoked_at"], name="accounts_session_revoked"),
        ]

    def __str__(self):
        return f"{self.user_id}:{self.id.hex[:8]}"

    def idle_expires_at(self):
        """Return when the session expires if it is not refreshed before then."""
        return self.last_used_at + timedelta(seconds=settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME)

    def ends_at(self):
        """Return when the session expires: the earlier of its idle and absolute expiry."""
        return min(self.expires_at, self.idle_expires_at())

    def is_expired(self, now=None) -> bool:
        return self.ends_at() <= (now or timezone.now())


class RefreshToken(models.Model):
    """One refresh token of a session, stored only as a SHA-256 digest.

    Refresh tokens are 256 random bits, so a fast digest is as safe as a slow one and
    lets the token be found by an index. Used tokens are kept while the session lives:
    presenting one again is how a stolen, replayed token is detected.
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True, help_text="When it was exchanged for its successor.")

    class Meta:
        verbose_name = "refresh token"
        verbose_name_plural = "refresh tokens"

    def __str__(self):
        return f"{self.session_id}:{self.pk}"


class AccountTokenPurpose(models.TextChoices):
    VERIFY_EMAIL = "verify_email", "Confirm the account's email address"
    CHANGE_EMAIL = "change_email", "Confirm a new email address"
    RESET_PASSWORD = "reset_password", "Reset the password"


class AccountToken(models.Model):
    """A one-time token sent by email (verification, password reset), stored as a digest.

    One-time: `used_at` is set on use. Only the newest token of a purpose is live: issuing
    one deletes the user's older ones. A reset token is also bound to the password it was
    issued for (`password_state`), so any password change, through any path, kills it.
    A verification token names the address it confirms; a change token (its own purpose,
    so that resending the account's verification never kills a pending change) names
    the new address, which replaces the old one only when the link is opened.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="account_tokens")
    purpose = models.CharField(max_length=32, choices=AccountTokenPurpose.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH, help_text="The address the token was sent to.")
    password_state = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "account token"
        verbose_name_plural = "account tokens"
        indexes = [models.Index(fields=["user", "purpose"], name="accounts_token_user_purpose")]

    def __str__(self):
        return f"{self.purpose}:{self.user_id}"


class AuthEventKind(models.TextChoices):
    """What happened, for the audit trail."""

    REGISTERED = "registered", "Account registered"
    LOGIN_SUCCEEDED = "login_succeeded", "Sign-in succeeded"
    LOGIN_FAILED = "login_failed", "Sign-in failed"
    LOGOUT = "logout", "Signed out"
    SESSIONS_ENDED = "sessions_ended", "Sessions ended"
    REFRESH_TOKEN_REUSED = "refresh_token_reused", "Refresh token reuse detected"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
    PASSWORD_RESET = "password_reset", "Password reset"
    EMAIL_VERIFICATION_SENT = "email_verification_sent", "Verification email sent"
    EMAIL_VERIFIED = "email_verified", "Email address verified"
    EMAIL_CHANGE_REQUESTED = "email_change_requested", "Email change requested"
    EMAIL_CHANGED = "email_changed", "Email address changed"
    USERNAME_CHANGED = "username_changed", "Username changed"
    ACCOUNT_DELETED = "account_deleted", "Account deleted"
    CLIENT_CREATED = "client_created", "Service client created"
    CLIENT_SECRET_ROTATED = "client_secret_rotated", "Service client secret rotated"
    CLIENT_DISABLED = "client_disabled", "Service client disabled"


class AuthEvent(models.Model):
    """One entry of the audit trail. Never holds a password or a token.

    `user` is kept while the account exists; `user_ref` keeps its id after deletion.
    `identifier` is what a failed sign-in or a reset request named (a canonical email
    or username), so attacks on accounts that do not exist are visible too.
    """

    kind = models.CharField(max_length=32, choices=AuthEventKind.choices)
    created_at = models.DateTimeField(default=timezone.now)
    # No database constraint: an audit entry must never take a lock on the account's row
    # (a foreign-key check does), nor make a sign-in or a deletion fail when the two race.
    # Django still sets it to null when the account is deleted; `user_ref` keeps the id.
    user = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="auth_events",
        db_constraint=False,
    )
    user_ref = models.BigIntegerField(null=True, blank=True, help_text="The account's id, kept after deletion.")
    identifier = models.CharField(max_length=EMAIL_MAX_LENGTH + 16, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True, default="")
    session_id = models.UUIDField(null=True, blank=True)
    detail = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        verbose_name = "auth event"
        verbose_name_plural = "auth events"
        indexes = [
            models.Index(fields=["created_at"], name="accounts_event_created"),
            models.Index(fields=["user", "created_at"], name="accounts_event_user"),
        ]

    def __str__(self):
        return f"{self.kind} {self.created_at:%Y-%m-%d %H:%M:%S}"


class RateLimitWindow(models.Model):
    """One rate-limit key's recent attempts, for the database store of accounts.ratelimit.

    Used when there is no Redis, so that every process on the database shares the
    budgets. `key` is a keyed digest (never an email or address); `hits` holds the times
    (ms since the epoch) of at most the last N accepted attempts, newest first;
    `locked_until` ends the current lockout. `manage.py housekeeping` deletes rows past
    `expires_at`.
    """

    key = models.CharField(max_length=255, primary_key=True)
    hits = models.JSONField(default=list)
    locked_until = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "rate-limit window"
        verbose_name_plural = "rate-limit windows"
        indexes = [models.Index(fields=["expires_at"], name="accounts_ratelimit_expires")]

    def __str__(self):
        return self.key


class ServiceClient(models.Model):
    """A server that calls Gatehouse with OAuth 2.0 client credentials (RFC 6749 §4.4).

    `client_id` is public and random; the secret (256 random bits) is shown once and
    stored only as a SHA-256 digest: for a secret that random, a fast digest is as safe as
    a slow hash. `scopes` (space-separated, from accounts.scopes.SCOPES) bounds what its
    tokens may do. A client is disabled, never deleted, so the audit trail keeps naming it.
    Its tokens die when it is disabled, and those issued before `secret_changed_at` when
    its secret is rotated (accounts.services.clients).
    """

    name = models.CharField(max_length=100, help_text="Who calls with this client; for people, not for code.")
    client_id = models.CharField(max_length=64, unique=True, editable=False)
    secret_digest = models.CharField(max_length=64, editable=False)
    scopes = models.CharField(max_length=200, help_text="Space-separated: users:read, users:write, tokens:introspect.")
    is_active = models.BooleanField(default=True, editable=False, help_text="Disabled clients get no token.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    secret_changed_at = models.DateTimeField(
        default=timezone.now,
        editable=False,
        help_text="When the current secret was set; tokens issued before this second are refused.",
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the client last authenticated."
    )

    class Meta:
        verbose_name = "service client"
        verbose_name_plural = "service clients"

    def __str__(self):
        return f"{self.name} ({self.client_id})"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def secret_version(self) -> int:
        """The version of the current secret (when it was set, in microseconds): service tokens carry it."""
        return int(self.secret_changed_at.timestamp() * 1_000_000)
