"""Authentication backends for Django's own sign-in forms (the admin)."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.exceptions import RateLimited
from accounts.selectors import user_get_by_login
from accounts.services import login_attempt_count

# Set on the request to the RateLimited refusal when a budget refused its sign-in (for the audit entry).
RATE_LIMITED = "_gatehouse_rate_limited"


class RateLimitedModelBackend(ModelBackend):
    """Django's ModelBackend behind the same budgets as tokenAuth (address and account).

    Without it the admin's login form would be an unlimited password oracle for staff
    accounts. PermissionDenied makes django.contrib.auth.authenticate() stop and report
    an ordinary failed login, so the form says nothing about the limit.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:
            email = username or kwargs.get("email") or ""
            try:
                login_attempt_count(request=request, account=user_get_by_login(email=email), email=email)
            except RateLimited as refused:
                setattr(request, RATE_LIMITED, refused)
                raise PermissionDenied from None
        return super().authenticate(request, username=username, password=password, **kwargs)
