"""OAuth 2.0 endpoints for service clients: /oauth/token and /oauth/introspect (issue 10)."""

urlpatterns = []
