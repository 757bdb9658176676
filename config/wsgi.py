"""WSGI entry point (`config.wsgi:application`); production settings unless told otherwise."""

import logging
import os

import django
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")


def refuse_to_serve_without_static_files() -> None:
    """Exit, with one log line, when the static files check fails (see check_static_manifest).

    Serving anyway would answer 500 on every admin page, request after request; a server
    that does not start is seen, and fixed, at deployment. Exit status 4 is gunicorn's
    "App failed to load": its master then stops, where any other status from a booting
    worker makes it start another one, forever.
    """
    # Imported here, once django.setup() has loaded the apps.
    from accounts.checks import check_static_manifest

    errors = [issue for issue in check_static_manifest(app_configs=None) if issue.is_serious()]
    if errors:
        error = errors[0]
        logging.getLogger(__name__).critical("Refusing to start: %s %s (%s)", error.msg, error.hint, error.id)
        raise SystemExit(4)


# What get_wsgi_application() does, with the refusal between its two steps: before the
# middleware is built, so that nothing else (WhiteNoise's warning about a missing
# STATIC_ROOT) is logged around the one line that says what to do.
django.setup(set_prefix=False)
refuse_to_serve_without_static_files()
from config.receivers import drop_idle_request_receivers  # noqa: E402 (once the apps are loaded)

drop_idle_request_receivers()
application = WSGIHandler()
