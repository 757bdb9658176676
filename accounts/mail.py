"""Account emails, and work that must not happen inside the request: both after commit.

A mail is queued with `transaction.on_commit`, so a rolled-back registration or reset
never sends a link to something that does not exist, and sending happens outside the
request's transaction. A failure to send (SMTP down, a refused address) is logged and
swallowed: the account and the response are never affected, and the user can ask for
the mail again.

With GATEHOUSE["EMAIL_ASYNC"] (production) mails and jobs run in a background thread,
so no response waits for the mail server. The enumeration-safe flows (password reset
and verification requests) go further: the request only validates, counts and queues;
looking the address up, issuing the token and mailing happen in the job, so answering
for an address with an account costs the request exactly what answering for one
without costs.
"""

import logging
import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import forbid_multi_line_headers, sanitize_address
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils.timesince import timeuntil

logger = logging.getLogger("accounts.mail")

_executor: ThreadPoolExecutor | None = None
_job = threading.local()
_executor_lock = threading.Lock()


def frontend_link(path: str, token: str) -> str:
    """Return `{FRONTEND_URL}/<path>?token=<token>`."""
    return f"{settings.FRONTEND_URL.rstrip('/')}/{path}?{urlencode({'token': token})}"


def mail_send_on_commit(*, template: str, to: str, context: dict) -> None:
    """Send the `template` mail to `to` once the current transaction commits."""
    run_after_commit(lambda: _deliver(template, to, context), name=f"{template} email")


def run_after_commit(job, *, name: str) -> None:
    """Run `job()` once the current transaction commits: in the background with EMAIL_ASYNC.

    A failure is logged with `name` and swallowed: it never reaches the request.
    """
    transaction.on_commit(lambda: _dispatch(job, name))


def lifetime_text(issued_at, expires_at) -> str:
    """Return how long a link issued at `issued_at` works, for a mail ("3 days", "1 hour")."""
    return timeuntil(expires_at, issued_at)


def _dispatch(job, name: str) -> None:
    if settings.GATEHOUSE["EMAIL_ASYNC"] and not getattr(_job, "running", False):
        _background().submit(_run_in_background, job, name)
    else:
        _run(job, name)


def _run(job, name: str) -> None:
    try:
        job()
    except Exception as exc:  # a background failure must never reach the request, whatever it is
        # The exception's type only: SMTP errors can quote the message, which holds a link.
        logger.error("Could not complete the %s: %s", name, type(exc).__name__)


def _run_in_background(job, name: str) -> None:
    # What a background job queues (its mail) runs in the same thread, right after it.
    _job.running = True
    try:
        _run(job, name)
    finally:
        _job.running = False
        # The thread's own database connection; the pool thread lives on, so close it.
        connection.close()


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


def mail_recipient(address: str) -> tuple[str, str] | None:
    """Return where Django's SMTP backend sends a mail to `address`: (RCPT TO, To header).

    None when Django cannot address it at all. The envelope recipient is what
    `sanitize_address` and `smtplib` make of the address (the parser there decodes RFC 2047
    encoded-words and unquotes quoted local parts), the header what `forbid_multi_line_headers`
    stores for `To`.
    """
    encoding = settings.DEFAULT_CHARSET
    try:
        envelope = smtplib.quoteaddr(sanitize_address(address, encoding))
        _, header = forbid_multi_line_headers("To", address, encoding)
    except ValueError:  # BadHeaderError is one too
        return None
    return envelope.removeprefix("<").removesuffix(">"), str(header)


def _deliver(template: str, to: str, context: dict) -> None:
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
    text = render_to_string(f"accounts/email/{template}_body.txt", context)
    html = render_to_string(f"accounts/email/{template}_body.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=[to])
    message.attach_alternative(html, "text/html")
    if not _addressed_exactly(message, to):
        # A stored address the mail layer would rewrite (one saved before the validator
        # refused such addresses, or written past it): the mail would reach someone else.
        # Not the address itself in the log: it is client input.
        logger.error(
            "Refused to send the %s email: the mail layer would not deliver it to the stored address", template
        )
        return
    message.send()


def _addressed_exactly(message: EmailMultiAlternatives, to: str) -> bool:
    """Return whether `message` goes to `to` alone: one envelope recipient and a To header, both exactly `to`."""
    if message.recipients() != [to] or mail_recipient(to) != (to, to):
        return False
    try:
        return message.message()["To"] == to
    except ValueError:
        return False
