"""OAuth 2.0 endpoints for service clients: /oauth/token and /oauth/introspect (issue 10)."""

from django.urls import path

from accounts import views_oauth

urlpatterns = [
    path("token", views_oauth.token, name="oauth-token"),
    path("introspect", views_oauth.introspect, name="oauth-introspect"),
]
