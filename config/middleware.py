"""Django's browser middleware, kept off the API paths; CORS without parsing every header.

Sessions, CSRF cookies, the session user and messages serve the admin, which a browser
uses with a Django session. A GraphQL request authenticates by Bearer token alone
(accounts.middleware), is exempt from Django's CSRF check (schema.views refuses every
content type a cross-site form can send) and never shows a message, so on the API paths
(GATEHOUSE["API_PATH_PREFIXES"]) these subclasses pass the request straight on: no
session lookup, no CSRF cookie read or set, no lazy user, no message storage.
"""

from corsheaders.middleware import CorsMiddleware as HeadersCorsMiddleware
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrfViewMiddleware
from django.utils.cache import patch_vary_headers

from config.https import is_api_path


class NotOnApiPaths:
    """Run the middleware everywhere except on the API paths."""

    def __init__(self, get_response):
        super().__init__(get_response)
        self.api_prefixes = tuple(settings.GATEHOUSE["API_PATH_PREFIXES"])

    def __call__(self, request):
        if is_api_path(request.path_info, self.api_prefixes):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(NotOnApiPaths, DjangoSessionMiddleware):
    pass


class CsrfViewMiddleware(NotOnApiPaths, DjangoCsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        # Django calls this hook whatever __call__ did; the API views are CSRF-exempt anyway.
        if is_api_path(request.path_info, self.api_prefixes):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(NotOnApiPaths, DjangoAuthenticationMiddleware):
    pass


class MessageMiddleware(NotOnApiPaths, DjangoMessageMiddleware):
    pass


class CorsMiddleware(HeadersCorsMiddleware):
    """django-cors-headers, answering a request without an Origin header without parsing its headers.

    The library reads `request.headers` (every header of the request, parsed into a new
    mapping) only to find `Origin`; servers and other non-browser callers send none, and
    then its only work is `Vary: origin`. With an Origin, the library does everything.
    """

    def add_response_headers(self, request, response):
        if "HTTP_ORIGIN" in request.META:
            return super().add_response_headers(request, response)
        enabled = getattr(request, "_cors_enabled", None)
        if enabled is None:
            enabled = self.is_enabled(request)
        if enabled:
            patch_vary_headers(response, ("origin",))
        return response
