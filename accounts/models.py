"""The account model: the seed's custom User (username, email, password), done safely."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.error_codes import UserErrorCode
from accounts.validators import (
    EMAIL_MAX_LENGTH,
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
