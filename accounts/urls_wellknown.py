"""Published documents under /.well-known/: the JWKS and the RFC 8414 metadata (issue 10)."""

from django.urls import path

from accounts import views_wellknown

urlpatterns = [
    path("jwks.json", views_wellknown.jwks, name="jwks"),
    path("oauth-authorization-server", views_wellknown.authorization_server_metadata, name="oauth-metadata"),
]
