"""System checks that refuse or warn about unsafe configuration (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

JWT_KEY_MIN_BYTES = 32


@register(Tags.security)
def check_jwt_signing_key(app_configs, **kwargs):
    """A short JWT key (current or previous), or one shared with SECRET_KEY, is an error everywhere."""
    key = settings.JWT_SIGNING_KEY or ""
    issues = []
    if len(key.encode()) < JWT_KEY_MIN_BYTES:
        issues.append(
            Error(
                f"JWT_SIGNING_KEY must be at least {JWT_KEY_MIN_BYTES} bytes.",
                hint='Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"',
                id="gatehouse.E001",
            )
        )
    if key and key == settings.SECRET_KEY:
        issues.append(Error("JWT_SIGNING_KEY must not be the same as SECRET_KEY.", id="gatehouse.E002"))
    for old_key in settings.GATEHOUSE["JWT_PREVIOUS_SIGNING_KEYS"]:
        if len(old_key.encode()) < JWT_KEY_MIN_BYTES or old_key == settings.SECRET_KEY:
            issues.append(
                Error(
                    f"Every JWT_PREVIOUS_SIGNING_KEYS entry must be at least {JWT_KEY_MIN_BYTES} bytes "
                    "and differ from SECRET_KEY: old keys still verify tokens.",
                    id="gatehouse.E003",
                )
            )
            break
    return issues


@register(Tags.security)
def check_refresh_cookie_path(app_configs, **kwargs):
    """The refresh token cookie must reach the GraphQL endpoint, or cookie mode cannot work."""
    path = settings.GATEHOUSE["REFRESH_TOKEN_COOKIE_PATH"]
    # RFC 6265 §5.1.4 path-match: the cookie path is a prefix ending at a "/" boundary.
    reaches = all(
        graphql == path or (graphql.startswith(path) and (path.endswith("/") or graphql[len(path)] == "/"))
        for graphql in settings.GATEHOUSE["GRAPHQL_PATHS"]
    )
    if not path.startswith("/") or not reaches:
        return [
            Error(
                f"REFRESH_TOKEN_COOKIE_PATH {path!r} does not cover the GraphQL endpoint.",
                hint="Use /graphql (the default) or / (which adds the __Host- prefix).",
                id="gatehouse.E004",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_deployment(app_configs, **kwargs):
    """Warn about development conveniences left on in a deployment."""
    config = settings.GATEHOUSE
    issues = []
    if config["GRAPHIQL"]:
        issues.append(Warning("GraphiQL is enabled.", hint="Set GRAPHIQL=false in production.", id="gatehouse.W001"))
    if config["INTROSPECTION"]:
        issues.append(
            Warning(
                "GraphQL introspection and field suggestions are enabled.",
                hint="Set GRAPHQL_INTROSPECTION=false in production.",
                id="gatehouse.W002",
            )
        )
    if settings.JWT_ACCESS_TOKEN_LIFETIME > 3600:
        issues.append(
            Warning(
                "Access tokens live longer than an hour.",
                hint="Keep JWT_ACCESS_TOKEN_LIFETIME short (300 seconds by default).",
                id="gatehouse.W003",
            )
        )
    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        issues.append(
            Warning(
                "Rate limits are kept per process.",
                hint="Set REDIS_URL so that every process shares them.",
                id="gatehouse.W004",
            )
        )
    if not config["EMAIL_ASYNC"] and not settings.DEBUG:
        issues.append(
            Warning(
                "Account emails are sent inside the request.",
                hint="Set EMAIL_ASYNC=true: then password reset and verification requests cost the same "
                "whether or not the address has an account, and no response waits for the mail server.",
                id="gatehouse.W006",
            )
        )
    if settings.DATABASES["default"].get("CONN_MAX_AGE", 0) == 0:
        issues.append(
            Warning(
                "Database connections are not persistent.",
                hint="Set DATABASE_CONN_MAX_AGE (production defaults to 600).",
                id="gatehouse.W005",
            )
        )
    return issues
