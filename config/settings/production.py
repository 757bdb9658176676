"""Production: secrets from the environment or no start, HTTPS behind a proxy, persistent
database connections, GraphiQL and introspection off unless enabled."""

from django.core.exceptions import ImproperlyConfigured

from accounts.keys import HMAC, keys_load
from config.env import env_bool, env_int, env_list, env_required, env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import (
    DATABASES,
    GATEHOUSE,
    JWT_ALGORITHM,
    JWT_PREVIOUS_PUBLIC_KEY_FILES,
    JWT_PRIVATE_KEY_FILE,
    MIDDLEWARE,
    PUBLIC_URL,
    graphql_jwt_settings,
)

DEBUG = False
SECRET_KEY = env_required("DJANGO_SECRET_KEY")
if JWT_ALGORITHM == HMAC:
    JWT_SIGNING_KEY = env_required("JWT_SIGNING_KEY")
    # At least 256 bits: RFC 7518 §3.2 for HS256, and PyJWT warns below 32 bytes.
    if len(JWT_SIGNING_KEY.encode()) < 32:
        raise ImproperlyConfigured("JWT_SIGNING_KEY must be at least 32 bytes of random data.")
    if JWT_SIGNING_KEY == SECRET_KEY:
        raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY.")
    # Old keys still verify tokens, so they must meet the same bar.
    for _old_key in GATEHOUSE["JWT_PREVIOUS_SIGNING_KEYS"]:
        if len(_old_key.encode()) < 32 or _old_key == SECRET_KEY:
            raise ImproperlyConfigured(
                "Every JWT_PREVIOUS_SIGNING_KEYS entry must be at least 32 bytes and differ from DJANGO_SECRET_KEY."
            )
    # A key file with HS256 is a half-done switch: the operator expects asymmetric tokens.
    if JWT_PRIVATE_KEY_FILE or JWT_PREVIOUS_PUBLIC_KEY_FILES:
        raise ImproperlyConfigured(
            "JWT_PRIVATE_KEY_FILE or JWT_PREVIOUS_PUBLIC_KEY_FILES is set but JWT_ALGORITHM is HS256: "
            "set JWT_ALGORITHM to RS256, ES256 or EdDSA, or remove the key file settings."
        )
else:
    # The private key signs; the HMAC secret is not used (and not required).
    JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY", "")
    # Refuse to start on a key file that is missing, unreadable, of the wrong type or too
    # weak (accounts.keys says which and why), instead of failing on the first sign-in.
    keys_load(
        JWT_ALGORITHM, private_key_file=JWT_PRIVATE_KEY_FILE, previous_public_key_files=JWT_PREVIOUS_PUBLIC_KEY_FILES
    )
GRAPHQL_JWT = graphql_jwt_settings(JWT_SIGNING_KEY)

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required in production (comma-separated).")

# Persistent connections with health checks: a new connection per request costs ~10 ms.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# TLS ends at the proxy in front of Gatehouse, which says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# The published metadata must not send clients to plain HTTP, which this deployment refuses.
if SECURE_SSL_REDIRECT and PUBLIC_URL.startswith("http://"):
    raise ImproperlyConfigured("PUBLIC_URL must be an https:// URL (SECURE_SSL_REDIRECT is on).")
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# The admin's static files, served by the app itself (collected at image build time).
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware")
MIDDLEWARE = [*MIDDLEWARE[: _security + 1], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[_security + 1 :]]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

GATEHOUSE = {
    **GATEHOUSE,
    "GRAPHIQL": env_bool("GRAPHIQL", False),
    "INTROSPECTION": env_bool("GRAPHQL_INTROSPECTION", False),
}

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds before a stalled mail server is given up on (the mail is logged as failed).
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
