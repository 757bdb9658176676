"""The one lock order of every flow that writes an account's state (Postgres row locks).

1. the account's row (`User`), FOR NO KEY UPDATE: no flow changes a key of it except a
   deletion or an identifier change, and this mode does not conflict with the key-share
   locks that inserts referring to the account take;
2. its sessions, by id;
3. their refresh tokens, and the account's emailed links.

Every flow that touches more than one session, or an account's password, email,
username or state, takes (1) first, so two such flows on one account simply wait for
each other. The single-session flows (refresh, logout) take one session, then its
refresh token, and never the account. Audit entries take no lock (AuthEvent.user has no
database constraint) and housekeeping skips rows that someone holds. With one order
there is no cycle, so no deadlock; and a flow that waited re-reads the row it locked,
so none decides on a stale copy loaded when the request was authenticated (a sign-in
checks the password it reads under the lock, so it never opens a session with a
password that a change has just replaced).

SQLite has no row locks: its write transactions (IMMEDIATE) serialise every writer.
"""

from accounts.exceptions import TokenRevoked
from accounts.models import User


def user_locked(user: User | int) -> User:
    """Return the account re-read with its row locked until the transaction ends.

    Raises TokenRevoked when it no longer exists: deleted while this request, which was
    authenticated as it, was on its way.
    """
    pk = user.pk if isinstance(user, User) else user
    locked = User.objects.select_for_update(no_key=True).filter(pk=pk).first()
    if locked is None:
        raise TokenRevoked
    return locked


def users_locked(user_ids) -> None:
    """Lock the rows of several accounts, in the one order (by id), until the transaction ends."""
    list(User.objects.select_for_update(no_key=True).filter(pk__in=user_ids).order_by("pk").values_list("pk"))
