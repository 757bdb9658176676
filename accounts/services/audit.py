"""The audit trail: the one writer of AuthEvent, and the request facts it records."""

import hashlib
import hmac
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts.batching import row_insert
from accounts.client import client_address
from accounts.models import AuthEvent, User
from accounts.validators import clean_user_agent, login_key, printable_text


def auth_event_record(
    *,
    kind: str,
    request=None,
    facts: dict | None = None,
    user: User | None = None,
    user_id: int | None = None,
    identifier: str = "",
    session_id=None,
    detail: str = "",
) -> AuthEvent:
    """Append one entry to the audit trail. Never pass a password or a token.

    The client's address and user agent come from `request`, or from `facts` taken from
    it earlier (work done after the response). The account is `user`, or just its id.
    The insert takes no lock on the account's row (AuthEvent.user has no database
    constraint), so recording never waits for, nor deadlocks with, a flow on the account.
    Inside `writes_together` the entry is written with the block's other rows.
    """
    if user is not None:
        user_id = user.pk
    return row_insert(
        AuthEvent(
            **(facts if facts is not None else request_facts(request)),
            kind=kind,
            user_id=user_id,
            user_ref=user_id,
            # Whatever a client typed: printable only (Postgres refuses NUL), and bounded.
            identifier=printable_text(identifier, AuthEvent._meta.get_field("identifier").max_length),
            session_id=session_id,
            detail=detail[: AuthEvent._meta.get_field("detail").max_length],
        )
    )


def request_facts(request) -> dict:
    """Return the client address and user agent of `request` as a session or event records them."""
    if request is None:
        return {"ip_address": None, "user_agent": ""}
    return {
        "ip_address": _ip_address(client_address(request)),
        "user_agent": clean_user_agent(request.META.get("HTTP_USER_AGENT")),
    }


def _ip_address(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def audit_identifier(*, email: str | None, username: str | None, account: User | None) -> str:
    """Return what a sign-in named, for the audit trail, never as typed unless it is an account's.

    People type passwords into the login field. A well-formed email address is kept in
    its canonical form (a password rarely is one), and so is the username of an existing
    account; anything else is kept as a keyed digest, so repeated attempts at the same
    unknown name still show as one, and nothing typed is readable.
    """
    key = login_key(email=email, username=username)
    if key.startswith("email:") or (account is not None and key.startswith("username:")):
        return key
    digest = hmac.new(settings.SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()[:24]
    return f"unknown:{digest}"


def auth_events_delete_old(*, dry_run: bool = False, batch_size: int = 5000) -> int:
    """Delete audit-trail entries older than AUTH_EVENT_RETENTION; return how many."""
    old = AuthEvent.objects.filter(created_at__lte=timezone.now() - timedelta(seconds=settings.AUTH_EVENT_RETENTION))
    if dry_run:
        return old.count()
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:batch_size]):
        deleted += AuthEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted
