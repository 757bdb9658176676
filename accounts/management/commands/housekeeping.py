"""`manage.py housekeeping`: delete sessions that can never be used again.

Run it from cron or a scheduled job (daily is plenty). It deletes, in batches:
- sessions past their absolute or idle expiry, with their refresh tokens;
- revoked sessions older than REVOKED_SESSION_RETENTION (kept until then so that the
  admin shows what ended and why, such as a replayed refresh token);
and Django's own expired admin sessions (`clearsessions`).
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.services import sessions_delete_stale


class Command(BaseCommand):
    help = "Delete expired sessions and long-revoked ones, with their refresh tokens."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted without deleting anything."
        )

    def handle(self, *args, dry_run=False, **options):
        counts = sessions_delete_stale(dry_run=dry_run)
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {counts.expired} expired and {counts.revoked} long-revoked session(s) "
            f"with {counts.refresh_tokens} refresh token(s)."
        )
        if not dry_run:
            call_command("clearsessions")
