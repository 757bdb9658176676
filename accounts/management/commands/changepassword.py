"""`manage.py changepassword`, which also ends every session of the account.

Django's command sets the password and saves; a password change must also sign out
whoever holds the account's tokens (SECURITY.md, token lifecycle), so the account's
sessions end once Django's command has succeeded.
"""

import getpass

from django.contrib.auth.management.commands.changepassword import Command as DjangoChangePasswordCommand

from accounts.models import SessionEndReason, User
from accounts.services import session_revoke_all


class Command(DjangoChangePasswordCommand):
    def handle(self, *args, **options):
        message = super().handle(*args, **options)
        # As Django's command does: the argument, else the operating-system user's name.
        login = options["username"] or getpass.getuser()
        user = User._default_manager.db_manager(options["database"]).get_by_natural_key(login)
        ended = session_revoke_all(user=user, reason=SessionEndReason.PASSWORD_CHANGE)
        return f"{message}\nEnded {ended} session(s)."
