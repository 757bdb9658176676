"""Django middleware that authenticates GraphQL requests by Bearer token, once per request."""

from django.conf import settings
from django.utils.functional import SimpleLazyObject
from graphql_jwt.settings import jwt_settings

from accounts.authentication import BearerAuthentication
from accounts.cookies import device_cookie_apply, refresh_cookie_apply


class JSONWebTokenMiddleware:
    """Attach `request.auth` (a BearerAuthentication) and `request.user` on the GraphQL paths.

    This is Django middleware, not graphene middleware, so it runs once per request instead
    of once per resolved field. On these paths the Bearer token is the only credential:
    `request.user` is replaced, so a Django session cookie (the admin's) never
    authenticates a GraphQL request, and access tokens are never read from cookies or the
    URL. In cookie mode it also writes the refresh token cookie the mutations asked for.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info in settings.GATEHOUSE["GRAPHQL_PATHS"]:
            auth = BearerAuthentication(request.META.get(jwt_settings.JWT_AUTH_HEADER_NAME))
            request.auth = auth
            request.user = SimpleLazyObject(auth.get_user_or_anonymous)
            response = self.get_response(request)
            # Cookie mode: the refresh token cookie a sign-in, refresh or logout asked for,
            # and the device token cookie a sign-in asked for.
            refresh_cookie_apply(request, response)
            device_cookie_apply(request, response)
            return response
        return self.get_response(request)
