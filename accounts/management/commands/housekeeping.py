"""`manage.py housekeeping`: delete what can never be used again, and old audit entries.

Run it from cron or a scheduled job (daily is plenty). It deletes, in batches:
- sessions past their absolute or idle expiry, with their refresh tokens;
- revoked sessions older than REVOKED_SESSION_RETENTION (kept until then so that the
  admin shows what ended and why, such as a replayed refresh token);
- used and expired emailed tokens (verification, password reset);
- audit-trail entries older than AUTH_EVENT_RETENTION;
- rate-limit windows of the database store whose attempts and lockout are over;
and Django's own expired admin sessions (`clearsessions`).
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.ratelimit import rate_limit_windows_delete_expired
from accounts.services import account_tokens_delete_stale, auth_events_delete_old, sessions_delete_stale


class Command(BaseCommand):
    help = (
        "Delete expired and long-revoked sessions, used or expired emailed tokens, old audit entries "
        "and expired rate-limit windows."
    )

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
        tokens = account_tokens_delete_stale(dry_run=dry_run)
        events = auth_events_delete_old(dry_run=dry_run)
        self.stdout.write(f"{verb} {tokens} used or expired emailed token(s) and {events} old audit-trail event(s).")
        windows = rate_limit_windows_delete_expired(dry_run=dry_run)
        self.stdout.write(f"{verb} {windows} expired rate-limit window(s).")
        if not dry_run:
            call_command("clearsessions")
