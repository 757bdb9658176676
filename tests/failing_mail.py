"""A mail backend standing in for a dead SMTP server: the only stand-in the account-email tests use.

SMTP is the outside world; everything else in those tests is real. Like a real server
that refuses a message, the error quotes what it was given (the body, with its link), so
a test can tell whether the application logs exception text it should not.
"""

import smtplib

from django.core.mail.backends.base import BaseEmailBackend


class FailingBackend(BaseEmailBackend):
    """Refuse every message with smtplib.SMTPException; remember what was handed over."""

    # Every message any instance was asked to send, oldest first (tests clear it).
    attempted: list = []

    def send_messages(self, email_messages):
        messages = list(email_messages)
        FailingBackend.attempted.extend(messages)
        quoted = " | ".join(message.body for message in messages)
        raise smtplib.SMTPException(f"554 5.7.1 Message rejected: {quoted}")
