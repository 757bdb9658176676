"""Tests: a fast hasher, fixed keys, generous rate limits (tests that need them set their own)."""

from datetime import timedelta

from config.env import env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import GATEHOUSE, graphql_jwt_settings

SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
JWT_SIGNING_KEY = "test-jwt-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
# HS256 unless a test installs key files (tests/signing_keys.py); no gateway claims.
JWT_ALGORITHM = "HS256"
JWT_PRIVATE_KEY_FILE = ""
JWT_PREVIOUS_PUBLIC_KEY_FILES = []
JWT_CLAIMS_PRESET = ""
PUBLIC_URL = ""
SERVICE_TOKEN_LIFETIME = 600
# Fixed values: a variable left in the developer's shell must not change what tests see.
JWT_ACCESS_TOKEN_LIFETIME = 300
JWT_REFRESH_TOKEN_LIFETIME = 7 * 24 * 3600
JWT_REFRESH_TOKEN_IDLE_LIFETIME = 24 * 3600
REFRESH_TOKEN_REUSE_GRACE = 10
REVOKED_SESSION_RETENTION = 30 * 24 * 3600
GRAPHQL_JWT = {
    **graphql_jwt_settings(JWT_SIGNING_KEY),
    "JWT_ALGORITHM": JWT_ALGORITHM,
    "JWT_EXPIRATION_DELTA": timedelta(seconds=JWT_ACCESS_TOKEN_LIFETIME),
    "JWT_REFRESH_EXPIRATION_DELTA": timedelta(seconds=JWT_REFRESH_TOKEN_LIFETIME),
    "JWT_ISSUER": "gatehouse",
    "JWT_AUDIENCE": "gatehouse",
    "JWT_LEEWAY": 0,
}
CORS_ALLOWED_ORIGINS = []
CORS_ALLOW_CREDENTIALS = False

ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# The real hasher is tested on its own; everything else hashes fast.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
TEST_REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

GATEHOUSE = {
    **GATEHOUSE,
    "GRAPHIQL": True,
    "INTROSPECTION": True,
    "TRUSTED_PROXY_COUNT": 0,
    "JWT_PREVIOUS_SIGNING_KEYS": [],
    "LOGIN_RATE_PER_ACCOUNT": None,
    "LOGIN_RATE_PER_ADDRESS": None,
    "REGISTER_RATE_PER_ADDRESS": None,
    "REFRESH_TOKEN_COOKIE": False,
    "REFRESH_TOKEN_COOKIE_SAMESITE": "Lax",
    "REFRESH_TOKEN_COOKIE_PATH": "/graphql",
    "ACCOUNT_EMAIL_RATE_PER_RECIPIENT": None,
    "ACCOUNT_EMAIL_RATE_PER_ADDRESS": None,
    "ACCOUNT_TOKEN_RATE_PER_ADDRESS": None,
    "OAUTH_TOKEN_RATE_PER_CLIENT": None,
    "OAUTH_TOKEN_RATE_PER_ADDRESS": None,
    "OAUTH_INTROSPECT_RATE_PER_CLIENT": None,
    "OAUTH_INTROSPECT_RATE_PER_ADDRESS": None,
    # In the test database: each test's transaction rolls its counts back. Tests of the
    # other stores override it.
    "RATE_LIMIT_STORE": "database",
    "RATE_LIMIT_REDIS_COOLDOWN": 5,
    # Off: tests of the session cache turn it on with TEST_REDIS_URL (tests/accounts/test_session_cache.py).
    "SESSION_CACHE_URL": None,
    "SESSION_CACHE_TTL": 60,
    # Synchronous, so that a test sees the mail in the locmem outbox at once.
    "EMAIL_ASYNC": False,
}
FRONTEND_URL = "https://app.example.com"
DEFAULT_FROM_EMAIL = "Gatehouse <no-reply@example.com>"
ACCOUNT_ALLOW_UNVERIFIED_LOGIN = True
ACCOUNT_DELETION = "delete"
EMAIL_VERIFICATION_TOKEN_LIFETIME = 3 * 24 * 3600
PASSWORD_RESET_TOKEN_LIFETIME = 3600
AUTH_EVENT_RETENTION = 90 * 24 * 3600
DEVICE_TOKEN_LIFETIME = 365 * 24 * 3600
REDIS_KEY_PREFIX = "gatehouse-test"
EMAIL_ALLOW_LOCAL_DOMAINS = False
