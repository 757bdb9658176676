"""`manage.py changepassword <email>`, through the account rules.

Django's command sets the password and saves. Here the account is found by its email
in any case (as every sign-in finds it), the password validators run as in Django's
command, and the password is set by `password_set`, which also ends every session of
the account and records the change in the audit trail.
"""

import getpass

from django.contrib.auth.management.commands.changepassword import Command as DjangoChangePasswordCommand
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts.models import User
from accounts.services import password_set

MAX_TRIES = 3


class Command(DjangoChangePasswordCommand):
    help = "Change an account's password (by its email) and end every session of the account."

    def handle(self, *args, **options):
        login = options["username"] or getpass.getuser()
        try:
            user = User._default_manager.db_manager(options["database"]).get_by_natural_key(login)
        except User.DoesNotExist:
            raise CommandError(f"user '{login}' does not exist") from None
        self.stdout.write(f"Changing password for user '{user}'")
        for _ in range(MAX_TRIES):
            first = self._get_pass()
            second = self._get_pass("Password (again): ")
            if first != second:
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                validate_password(second, user)
            except ValidationError as exc:
                self.stderr.write("\n".join(exc.messages))
                continue
            ended = password_set(user=user, password=first)
            return f"Password changed successfully for user '{user}'.\nEnded {ended} session(s)."
        raise CommandError(f"Aborting password change for user '{user}' after {MAX_TRIES} attempts")
