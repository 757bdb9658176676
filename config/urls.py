"""URL map: the GraphQL endpoint (with and without the trailing slash) and the admin.

The health probes are answered by config.health.HealthProbeMiddleware.
"""

from django.contrib import admin
from django.urls import include, path

from accounts.admin import own_password_change
from config import errors
from schema.views import graphql_view

urlpatterns = [
    path("graphql", graphql_view, name="graphql"),
    path("graphql/", graphql_view),
    # Ahead of the admin's own page of the same path: it ends the account's sessions too.
    path("admin/password_change/", admin.site.admin_view(own_password_change)),
    path("admin/", admin.site.urls),
    path(".well-known/", include("accounts.urls_wellknown")),
    path("oauth/", include("accounts.urls_oauth")),
]

# Errors outside the GraphQL view are JSON too: never Django's HTML pages.
handler400 = errors.bad_request
handler403 = errors.permission_denied
handler404 = errors.not_found
handler500 = errors.server_error
