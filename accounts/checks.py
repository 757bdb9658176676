"""System checks that refuse or warn about unsafe configuration (`manage.py check --deploy`)."""

import os

import jwt
from django.apps import apps
from django.conf import STATICFILES_STORAGE_ALIAS, settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages
from django.utils.module_loading import import_string

from accounts.keys import HMAC, key_set, world_readable_key_file

JWT_KEY_MIN_BYTES = 32


@register(Tags.security)
def check_jwt_signing_key(app_configs, **kwargs):
    """A short JWT key (current or previous), or one shared with SECRET_KEY, is an error everywhere.

    Only under HS256: with an asymmetric algorithm the HMAC secret signs nothing
    (gatehouse.E011 checks the key files instead).
    """
    if settings.GRAPHQL_JWT["JWT_ALGORITHM"] != HMAC:
        return []
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
def check_signing_keys(app_configs, **kwargs):
    """Every configured key must load: a bad key file would fail the first sign-in instead of the start."""
    try:
        key_set()
    except (ImproperlyConfigured, jwt.InvalidKeyError) as exc:
        return [
            Error(
                f"The JWT signing keys cannot be used: {exc}",
                hint="Generate a key with `manage.py generate_signing_key --algorithm ALG --out PATH`.",
                id="gatehouse.E011",
            )
        ]
    return []


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
    if config["RATE_LIMIT_STORE"] == "memory":
        issues.append(
            Warning(
                "Rate limits are kept per process.",
                hint="Set REDIS_URL (or leave RATE_LIMIT_STORE to the database) so that every process shares them.",
                id="gatehouse.W004",
            )
        )
    elif settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        issues.append(
            Warning(
                "No REDIS_URL: rate limits are counted in the database, one write per counted attempt, "
                "and every authenticated request checks its session with a query.",
                hint="Set REDIS_URL to count them in Redis and serve the session check from it, off the database.",
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
    issuer = settings.GRAPHQL_JWT["JWT_ISSUER"]
    if settings.PUBLIC_URL and issuer != settings.PUBLIC_URL:
        issues.append(
            Warning(
                f"The OAuth metadata's issuer (JWT_ISSUER={issuer!r}) is not PUBLIC_URL.",
                hint="RFC 8414 clients that validate the metadata (Authlib's, for one) expect the issuer to be "
                "the https URL it is served under: set JWT_ISSUER to PUBLIC_URL. It changes the `iss` of new "
                "tokens, so verifiers must accept the new one first.",
                id="gatehouse.W009",
            )
        )
    readable = world_readable_key_file()
    if readable:
        issues.append(
            Warning(
                f"The JWT private key file {readable} is readable by every user of the machine.",
                hint=f"Restrict it to the server's user: chmod 600 {readable} (and chown it to that user).",
                id="gatehouse.W008",
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


@register(Tags.staticfiles, deploy=True)
def check_static_manifest(app_configs, **kwargs):
    """With a manifest storage, every static file must be collected: a missing one is a 500.

    The manifest storage (production's) refuses to name a file its manifest does not list,
    so an image built without `collectstatic`, or with the files of older code, answers 500
    on every admin page. config/wsgi.py runs this check too and refuses to start.
    """
    backend = settings.STORAGES[STATICFILES_STORAGE_ALIAS]
    storage_class = import_string(backend["BACKEND"])
    if not issubclass(storage_class, ManifestFilesMixin):
        return []
    hint = "Run `manage.py collectstatic --noinput` (the Dockerfile does, at build time) before starting."
    location = os.path.join(settings.STATIC_ROOT, storage_class.manifest_name)
    try:
        # A new instance reads the manifest as it is now (the shared one keeps what it found).
        storage = storages.create_storage(backend)
    except ValueError:
        return [Error(f"The static files manifest {location} is not readable.", hint=hint, id="gatehouse.E010")]
    if not storage.hashed_files:
        return [
            Error(
                f"The static files are not collected: {location} is missing, so the admin would answer 500.",
                hint=hint,
                id="gatehouse.E010",
            )
        ]
    # The same files collectstatic gathers: every finder, with the app's ignore patterns.
    ignore_patterns = apps.get_app_config("staticfiles").ignore_patterns
    expected = set()
    for finder in finders.get_finders():
        for path, source in finder.list(ignore_patterns):
            prefix = getattr(source, "prefix", None)
            expected.add(storage.clean_name(os.path.join(prefix, path) if prefix else path))
    missing = sorted(expected - set(storage.hashed_files))
    if missing:
        return [
            Error(
                f"{len(missing)} static files are missing from the manifest {location} (e.g. {missing[0]}): "
                "it was collected from other code, and the pages using them would answer 500.",
                hint=hint,
                id="gatehouse.E010",
            )
        ]
    return []


@register(Tags.security)
def check_retired_settings(app_configs, **kwargs):
    """A retired rate setting left in the environment does nothing: say so rather than ignore it silently."""
    if "PASSWORD_CHECK_RATE_PER_ACCOUNT" in os.environ:
        return [
            Warning(
                "PASSWORD_CHECK_RATE_PER_ACCOUNT is set but ignored: every password check (sign-in, the admin "
                "login, passwordChange, deleteAccount, updateAccount) now counts against the account's one "
                "budget, LOGIN_RATE_PER_ACCOUNT, so a signed-in check is no second guessing channel.",
                hint="Remove PASSWORD_CHECK_RATE_PER_ACCOUNT; tune LOGIN_RATE_PER_ACCOUNT instead.",
                id="gatehouse.W007",
            )
        ]
    return []
