"""A URLconf for tests only: the real one plus views that fail, to reach Django's handlers."""

from django.core.exceptions import PermissionDenied
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def crash(request):
    raise RuntimeError("secret internal detail SELECT * FROM accounts_user")


def deny(request):
    raise PermissionDenied("secret reason")


urlpatterns = [*urlpatterns, path("crash", crash), path("deny", deny)]
