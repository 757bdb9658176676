"""Local development: DEBUG, GraphiQL and introspection on, throwaway keys."""

from config.env import env_bool, env_list, env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import GATEHOUSE, graphql_jwt_settings

DEBUG = True
# Development-only values; production refuses to start without its own.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "local-development-only-secret-key-not-for-production")
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", "local-development-only-jwt-signing-key-0123456789")
GRAPHQL_JWT = graphql_jwt_settings(JWT_SIGNING_KEY)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
GATEHOUSE = {
    **GATEHOUSE,
    "GRAPHIQL": env_bool("GRAPHIQL", True),
    "INTROSPECTION": env_bool("GRAPHQL_INTROSPECTION", True),
    # Mails print to the console as soon as the transaction commits.
    "EMAIL_ASYNC": env_bool("EMAIL_ASYNC", False),
}
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
