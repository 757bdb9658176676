"""The account rules that write. Nothing else writes.

One module per concern: sign-in and its budgets (signin), sessions and refresh tokens
(sessions), registration and verification (registration), passwords (passwords),
profile changes and deletion (profile), emailed links (account_tokens), the audit trail
(audit), service clients and their OAuth tokens (clients), what a client may do to
accounts (service_actions); `locking` states the one lock order they all follow.
"""

from accounts.services.account_tokens import account_tokens_delete_stale, account_tokens_revoke
from accounts.services.audit import auth_event_record, auth_events_delete_old
from accounts.services.clients import (
    client_authenticate,
    client_create,
    client_disable,
    client_secret_rotate,
    service_token_check,
    service_token_issue,
    service_token_verify,
    token_introspect,
)
from accounts.services.passwords import password_change, password_reset, password_reset_request, password_set
from accounts.services.profile import account_delete, account_update, users_delete
from accounts.services.registration import account_verification_resend, account_verify, user_register
from accounts.services.service_actions import client_user_deactivate, client_user_sessions_revoke
from accounts.services.sessions import (
    StaleSessions,
    refresh_token_revoke,
    refresh_token_rotate,
    session_open,
    session_revoke,
    session_revoke_all,
    sessions_delete_stale,
    sessions_revoke,
    user_deactivate,
)
from accounts.services.signin import (
    admin_sign_in_record,
    django_session_password_check_count,
    login_attempt_count,
    password_check_count,
    user_authenticate,
)

__all__ = [
    "StaleSessions",
    "account_delete",
    "account_tokens_delete_stale",
    "account_tokens_revoke",
    "account_update",
    "account_verification_resend",
    "account_verify",
    "admin_sign_in_record",
    "auth_event_record",
    "auth_events_delete_old",
    "client_authenticate",
    "client_create",
    "client_disable",
    "client_secret_rotate",
    "client_user_deactivate",
    "client_user_sessions_revoke",
    "django_session_password_check_count",
    "login_attempt_count",
    "password_change",
    "password_check_count",
    "password_reset",
    "password_reset_request",
    "password_set",
    "refresh_token_revoke",
    "refresh_token_rotate",
    "service_token_check",
    "service_token_issue",
    "service_token_verify",
    "session_open",
    "session_revoke",
    "session_revoke_all",
    "sessions_delete_stale",
    "sessions_revoke",
    "token_introspect",
    "user_authenticate",
    "user_deactivate",
    "user_register",
    "users_delete",
]
