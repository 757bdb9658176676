"""`createsuperuser` that applies the account rules in non-interactive mode too.

Django's command runs the password validators only when it prompts, and checks only the
login field (email) for duplicates, so `--noinput` would accept `123` as a password, and
both modes would crash with an IntegrityError on a username taken in another case.
"""

import os

from django.contrib.auth.management.commands.createsuperuser import Command as DjangoCommand
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import User
from accounts.selectors import username_taken
from accounts.validators import canonical_username


class Command(DjangoCommand):
    def handle(self, *args, **options):
        if not options["interactive"]:
            self._check_noinput(options)
        return super().handle(*args, **options)

    def get_input_data(self, field, message, default=None):
        """Ask again, like Django does for the email, when a prompted username is taken."""
        value = super().get_input_data(field, message, default)
        if field.name == "username" and value:
            try:
                canonical_username(value)
            except ValidationError as exc:
                self.stderr.write("Error: " + "; ".join(exc.messages))
                return None
            if username_taken(canonical_username(value)):
                self.stderr.write("Error: That username is already taken.")
                return None
        return value

    def _check_noinput(self, options):
        username = options.get("username") or os.environ.get("DJANGO_SUPERUSER_USERNAME") or ""
        email = options.get("email") or os.environ.get("DJANGO_SUPERUSER_EMAIL") or ""
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        try:
            username = canonical_username(username)
        except ValidationError as exc:
            raise CommandError("Error: " + "; ".join(exc.messages)) from None
        if username_taken(username):
            raise CommandError("Error: That username is already taken.")
        if password is not None:
            try:
                validate_password(password, user=User(username=username, email=email))
            except ValidationError as exc:
                raise CommandError("Error: " + "; ".join(exc.messages)) from None
