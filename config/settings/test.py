"""Tests: a fast hasher, fixed keys, generous rate limits (tests that need them set their own)."""

from config.env import env_str
from config.settings.base import *  # noqa: F403
from config.settings.base import GATEHOUSE, graphql_jwt_settings

SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
JWT_SIGNING_KEY = "test-jwt-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
GRAPHQL_JWT = graphql_jwt_settings(JWT_SIGNING_KEY)

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
    "LOGIN_RATE_PER_ACCOUNT": None,
    "LOGIN_RATE_PER_ADDRESS": None,
    "REGISTER_RATE_PER_ADDRESS": None,
}
