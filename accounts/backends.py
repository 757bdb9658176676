"""Authentication backends for Django's own sign-in forms (the admin)."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from accounts.exceptions import RateLimited
from accounts.services import login_attempt_count


class RateLimitedModelBackend(ModelBackend):
    """Django's ModelBackend behind the same per-address and per-account limits as tokenAuth.

    Without it the admin's login form would be an unlimited password oracle for staff
    accounts. PermissionDenied makes django.contrib.auth.authenticate() stop and report
    an ordinary failed login, so the form says nothing about the limit.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:
            try:
                login_attempt_count(request=request, email=username or kwargs.get("email") or "")
            except RateLimited:
                raise PermissionDenied from None
        return super().authenticate(request, username=username, password=password, **kwargs)
