"""Account emails: rendered from templates, sent only after the transaction commits.

A mail is queued with `transaction.on_commit`, so a rolled-back registration or reset
never sends a link to something that does not exist, and sending happens outside the
request's transaction. A failure to send (SMTP down, a refused address) is logged and
swallowed: the account and the response are never affected, and the user can ask for
the mail again. With GATEHOUSE["EMAIL_ASYNC"] (production) the mail leaves from a
background thread, so the response time never depends on the mail server, and never
reveals whether a mail was sent at all (password reset, resend).
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.timesince import timeuntil

logger = logging.getLogger("accounts.mail")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def frontend_link(path: str, token: str) -> str:
    """Return `{FRONTEND_URL}/<path>?token=<token>`."""
    return f"{settings.FRONTEND_URL.rstrip('/')}/{path}?{urlencode({'token': token})}"


def mail_send_on_commit(*, template: str, to: str, context: dict) -> None:
    """Send the `template` mail to `to` once the current transaction commits."""
    transaction.on_commit(lambda: _dispatch(template, to, context))


def lifetime_text(expires_at) -> str:
    """Return how long until `expires_at`, for a mail ("3 days", "1 hour")."""
    return timeuntil(expires_at, timezone.now())


def _dispatch(template: str, to: str, context: dict) -> None:
    if settings.GATEHOUSE["EMAIL_ASYNC"]:
        _background().submit(_deliver, template, to, context)
    else:
        _deliver(template, to, context)


def _background() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gatehouse-mail")
        return _executor


def mail_wait() -> None:
    """Wait until every mail handed to the background thread has been sent (tests, shutdown)."""
    global _executor
    with _executor_lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=True)


def _deliver(template: str, to: str, context: dict) -> None:
    try:
        subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
        text = render_to_string(f"accounts/email/{template}_body.txt", context)
        html = render_to_string(f"accounts/email/{template}_body.html", context)
        message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
        message.attach_alternative(html, "text/html")
        message.send()
    except Exception as exc:  # a mail failure must never reach the request, whatever it is
        # The exception's type only: SMTP errors can quote the message, which holds a link.
        logger.error("Could not send the %s email: %s", template, type(exc).__name__)
