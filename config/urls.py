"""URL map: the GraphQL endpoint (with and without the trailing slash), health probes, admin."""

from django.contrib import admin
from django.urls import path

from config.health import healthz, readyz
from schema.views import GraphQLView

graphql_view = GraphQLView.as_view()

urlpatterns = [
    path("graphql", graphql_view, name="graphql"),
    path("graphql/", graphql_view),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
]
