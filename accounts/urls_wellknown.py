"""Published documents under /.well-known/: the JWKS and the RFC 8414 metadata (issue 10)."""

urlpatterns = []
