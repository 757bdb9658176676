"""Settings shared by every environment. Each value that differs between deployments comes
from the environment (see README, "Settings"); local, test and production only adjust."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_rate, env_seconds, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")

INSTALLED_APPS = [
    # First, so that its createsuperuser (which applies the account rules) wins over Django's.
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "graphene_django",
    "schema",
]

MIDDLEWARE = [
    # Probes first: they must answer whatever Host the orchestrator sends.
    "config.health.HealthProbeMiddleware",
    # Before SecurityMiddleware: plain HTTP to the API is refused, never redirected to https.
    "config.https.HttpsOnlyApiMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # django-cors-headers, without parsing every header of a request that has no Origin.
    "config.middleware.CorsMiddleware",
    # Django's session, CSRF, session-user and message middleware serve the admin only:
    # these subclasses skip the API paths, which use none of them (config/middleware.py).
    "config.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "config.middleware.CsrfViewMiddleware",
    "config.middleware.AuthenticationMiddleware",
    # After Django's: on the GraphQL paths the Bearer token is the user.
    "accounts.middleware.JSONWebTokenMiddleware",
    "config.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file by default (zero set-up); DATABASE_URL selects Postgres.
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A query that runs too long fails inside the request (a masked INTERNAL_SERVER_ERROR)
    # instead of holding a worker until gunicorn kills it without an answer.
    _statement_timeout = env_int("DATABASE_STATEMENT_TIMEOUT", 5000, minimum=1)
    # A server that never answers (frozen, partitioned) is cut off by the client too: the
    # config.db backend bounds the connection set-up and each query's wait. The server
    # cancels a slow query first; the client limit only ends waits it never answers.
    _client_timeout = env_int("DATABASE_CLIENT_TIMEOUT", _statement_timeout + 2000, minimum=_statement_timeout + 1)
    DATABASES["default"]["ENGINE"] = "config.db"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # The server also ends a query whose client has gone (Postgres 14+): a request the
            # client-side limit cut off does not keep running, and holding locks, after it.
            "options": f"-c statement_timeout={_statement_timeout} -c client_connection_check_interval=1000",
            "connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 3, minimum=1),
            "client_timeout": _client_timeout,
        }
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write transactions take SQLite's write lock when they begin and wait up to 20 s for
    # it: in the default deferred mode, two sign-ins or refreshes at once make one of them
    # fail at once with "database is locked" (a 500) instead of waiting its turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS_URL makes rate limits and shared state common to every process.
REDIS_URL = env_str("REDIS_URL")
# Every key Gatehouse writes to Redis (cache and rate limits) starts with this, so that two
# deployments sharing one Redis never share counters.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "gatehouse")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "gatehouse"}}

AUTH_USER_MODEL = "accounts.User"
# Django's own sign-in (the admin) counts against the same login limits as tokenAuth.
AUTHENTICATION_BACKENDS = ["accounts.backends.RateLimitedModelBackend"]

# Argon2id at one of OWASP's minimum configurations (7 MiB, t=5, p=1; see accounts.hashers);
# older hashes (other parameters, Django's own Argon2, PBKDF2) still verify and are upgraded on login.
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idPasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
PASSWORD_MAX_LENGTH = 1024
AUTH_PASSWORD_VALIDATORS = [
    # On every path that sets a password; a longer one is never hashed.
    {"NAME": "accounts.validators.MaximumLengthValidator", "OPTIONS": {"max_length": PASSWORD_MAX_LENGTH}},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic writes (and, in production, the app serves from); the Dockerfile fills it.
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")

# The request body is read only up to this size; larger bodies get 413 before any parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# CORS only for configured origins; never a wildcard.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/graphql/?$"
CORS_ALLOW_HEADERS = ["authorization", "content-type", "accept", "apollo-require-preflight", "x-apollo-operation-name"]

# JSON Web Tokens. The signing key is its own secret (never SECRET_KEY); subclasses set it.
JWT_SIGNING_KEY = ""
# HS256 signs with JWT_SIGNING_KEY; RS256, ES256 and EdDSA (Ed25519) with the private key in
# the PEM file JWT_PRIVATE_KEY_FILE, and publish its public key (and those of the PEM files
# in JWT_PREVIOUS_PUBLIC_KEY_FILES, still accepted) at /.well-known/jwks.json (accounts/keys.py).
JWT_ALGORITHM = env_choice("JWT_ALGORITHM", "HS256", ("HS256", "RS256", "ES256", "EdDSA"))
JWT_PRIVATE_KEY_FILE = env_str("JWT_PRIVATE_KEY_FILE", "")
JWT_PREVIOUS_PUBLIC_KEY_FILES = env_list("JWT_PREVIOUS_PUBLIC_KEY_FILES")
# Extra claims in user tokens for an API gateway: "" (none) or "hasura".
JWT_CLAIMS_PRESET = env_choice("JWT_CLAIMS_PRESET", "", ("hasura",))


def public_url(raw: str | None) -> str:
    """Return PUBLIC_URL without a trailing slash; refuse anything but an absolute http(s) URL.

    The published metadata's URLs are built from it, never from a request's Host header.
    """
    if not raw:
        return ""
    parts = urlsplit(raw.strip())
    try:
        valid_port = parts.port is None or parts.port > 0  # a port out of range or not a number raises
    except ValueError:
        valid_port = False
    if (
        not valid_port
        or parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or "?" in raw
        or "#" in raw
    ):
        raise ImproperlyConfigured(
            f"PUBLIC_URL must be an absolute http(s) URL without credentials, query or fragment "
            f"(e.g. https://auth.example.com), not {raw!r}."
        )
    return raw.strip().rstrip("/")


# Gatehouse's public base URL, e.g. https://auth.example.com: /.well-known/oauth-authorization-server
# is served only when it is set.
PUBLIC_URL = public_url(env_str("PUBLIC_URL"))
JWT_ACCESS_TOKEN_LIFETIME = env_seconds("JWT_ACCESS_TOKEN_LIFETIME", 300, minimum=1)
# A session's absolute lifetime: refreshing never extends it past this.
JWT_REFRESH_TOKEN_LIFETIME = env_seconds("JWT_REFRESH_TOKEN_LIFETIME", 7 * 24 * 3600, minimum=1)
# A session not refreshed for this long is over (idle expiry).
JWT_REFRESH_TOKEN_IDLE_LIFETIME = env_seconds("JWT_REFRESH_TOKEN_IDLE_LIFETIME", 24 * 3600, minimum=1)
# A used refresh token presented again within this many seconds is refused without harm
# (a retry, two tabs racing); later, it is a replay and the whole session is revoked.
REFRESH_TOKEN_REUSE_GRACE = env_seconds("REFRESH_TOKEN_REUSE_GRACE", 10, minimum=0)
# Revoked sessions stay visible (admin, reuse forensics) this long before housekeeping deletes them.
REVOKED_SESSION_RETENTION = env_seconds("REVOKED_SESSION_RETENTION", 30 * 24 * 3600, minimum=0)


def graphql_jwt_settings(signing_key: str) -> dict:
    """Return django-graphql-jwt's namespaced settings with safe values for `signing_key`.

    accounts.tokens reads the algorithm, key, lifetimes, issuer, audience and leeway from
    here, and accounts.authentication the header name and prefix. The handlers point at
    accounts.tokens and accounts.selectors so that the library's own helpers
    (graphql_jwt.shortcuts.get_token / get_user_by_token) issue and accept exactly our
    tokens; the library's unsafe defaults (no expiry check, the `JWT` prefix, SECRET_KEY
    as the key, tokens from arguments) are overridden for the same reason.
    """
    return {
        "JWT_ALGORITHM": JWT_ALGORITHM,
        "JWT_SECRET_KEY": signing_key,
        "JWT_VERIFY": True,
        "JWT_VERIFY_EXPIRATION": True,
        # Clock skew tolerated on exp and iat, in seconds.
        "JWT_LEEWAY": env_int("JWT_LEEWAY", 0),
        "JWT_EXPIRATION_DELTA": timedelta(seconds=JWT_ACCESS_TOKEN_LIFETIME),
        "JWT_REFRESH_EXPIRATION_DELTA": timedelta(seconds=JWT_REFRESH_TOKEN_LIFETIME),
        "JWT_ISSUER": env_str("JWT_ISSUER", "gatehouse"),
        "JWT_AUDIENCE": env_str("JWT_AUDIENCE", "gatehouse"),
        "JWT_AUTH_HEADER_NAME": "HTTP_AUTHORIZATION",
        "JWT_AUTH_HEADER_PREFIX": "Bearer",
        "JWT_ALLOW_ARGUMENT": False,
        "JWT_ENCODE_HANDLER": "accounts.tokens.jwt_encode",
        "JWT_DECODE_HANDLER": "accounts.tokens.jwt_decode",
        "JWT_PAYLOAD_HANDLER": "accounts.tokens.jwt_payload",
        "JWT_PAYLOAD_GET_USERNAME_HANDLER": "accounts.tokens.jwt_payload_get_subject",
        "JWT_GET_USER_BY_NATURAL_KEY_HANDLER": "accounts.selectors.user_get_by_subject",
    }


# Base of the links in account emails (activation, password reset).
FRONTEND_URL = env_str("FRONTEND_URL", "http://localhost:3000")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webmaster@localhost")
# Whether accounts whose email is not yet confirmed may sign in (the seed lets them).
ACCOUNT_ALLOW_UNVERIFIED_LOGIN = env_bool("ACCOUNT_ALLOW_UNVERIFIED_LOGIN", True)
# Whether an email address may be on a single-label domain (`a@localhost`) or an IP literal
# (`a@[127.0.0.1]`): on an internet-facing service they only send mail into the server's own
# network, so they are refused unless a closed deployment needs them.
EMAIL_ALLOW_LOCAL_DOMAINS = env_bool("EMAIL_ALLOW_LOCAL_DOMAINS", False)
# What deleteAccount does: "delete" the row, or "deactivate" it (identifiers scrubbed, row kept).
ACCOUNT_DELETION = env_choice("ACCOUNT_DELETION", "delete", ("delete", "deactivate"))
# How long the links in account emails work, seconds.
EMAIL_VERIFICATION_TOKEN_LIFETIME = env_seconds("EMAIL_VERIFICATION_TOKEN_LIFETIME", 3 * 24 * 3600, minimum=60)
PASSWORD_RESET_TOKEN_LIFETIME = env_seconds("PASSWORD_RESET_TOKEN_LIFETIME", 3600, minimum=60)
# Audit-trail entries older than this are deleted by `manage.py housekeeping`, seconds.
AUTH_EVENT_RETENTION = env_seconds("AUTH_EVENT_RETENTION", 90 * 24 * 3600, minimum=0)
# How long a device token (a browser or app that signed in successfully) keeps its own
# sign-in budget, seconds (OWASP's device cookie).
DEVICE_TOKEN_LIFETIME = env_seconds("DEVICE_TOKEN_LIFETIME", 365 * 24 * 3600, minimum=60)
# How long a service client's access token (POST /oauth/token) lives, seconds.
SERVICE_TOKEN_LIFETIME = env_seconds("SERVICE_TOKEN_LIFETIME", 600, minimum=1)

# Gatehouse's own settings, in one namespaced dict.
GATEHOUSE = {
    # Previous signing keys still accepted for verification (key rotation without a mass logout).
    "JWT_PREVIOUS_SIGNING_KEYS": env_list("JWT_PREVIOUS_SIGNING_KEYS"),
    "GRAPHQL_PATHS": ("/graphql", "/graphql/"),
    # API paths, each with everything below it: over plain HTTP they answer 403
    # HTTPS_REQUIRED instead of a redirect (config/https.py). New API endpoints join here.
    "API_PATH_PREFIXES": ("/graphql", "/oauth", "/.well-known"),
    "GRAPHIQL": env_bool("GRAPHIQL", False),
    "INTROSPECTION": env_bool("GRAPHQL_INTROSPECTION", False),
    "TRUSTED_PROXY_COUNT": env_int("TRUSTED_PROXY_COUNT", 0),
    # Request limits, enforced before a document is validated or executed.
    "MAX_QUERY_LENGTH": 8_000,
    "MAX_TOKENS": 1_000,
    "MAX_DEPTH": 10,
    "MAX_ALIASES": 15,
    "MAX_DIRECTIVES": 10,
    "MAX_OPERATIONS": 5,
    "MAX_ROOT_FIELDS": 10,
    # Selections with fragments expanded: in all (twice the standard introspection query), and
    # per selection set, fields of the same response path merged as the executor merges them.
    "MAX_SELECTIONS": 500,
    "MAX_SELECTIONS_PER_SET": 50,
    # Pairs of same-named fields in one merged selection set: graphql-core's overlap validation
    # compares each pair, so this bounds its quadratic work. Real documents stay far below.
    "MAX_FIELD_PAIRS": 1_000,
    # Root fields that may appear at most once per request: brute force cannot hide in aliases.
    "SENSITIVE_ROOT_FIELDS": (
        "tokenAuth",
        "register",
        "refreshToken",
        "passwordChange",
        "passwordReset",
        "sendPasswordResetEmail",
        "resendActivationEmail",
        "verifyAccount",
        "updateAccount",
        "deleteAccount",
    ),
    "MAX_AUTHORIZATION_HEADER": 4_096,
    # Attempts in any interval of the window (a sliding window), shared by every process
    # (Redis, or the database without it); None disables one.
    # Per account, across all its identifiers and every password check: 10 per 6 minutes
    # is at most 100 guesses an hour.
    "LOGIN_RATE_PER_ACCOUNT": env_rate("LOGIN_RATE_PER_ACCOUNT", "10/360"),
    "LOGIN_RATE_PER_ADDRESS": env_rate("LOGIN_RATE_PER_ADDRESS", "30/60"),
    "REGISTER_RATE_PER_ADDRESS": env_rate("REGISTER_RATE_PER_ADDRESS", "20/3600"),
    # Account emails (password reset, verification resend, email change): per recipient
    # address, whether or not it has an account, and per client address.
    "ACCOUNT_EMAIL_RATE_PER_RECIPIENT": env_rate("ACCOUNT_EMAIL_RATE_PER_RECIPIENT", "3/3600"),
    "ACCOUNT_EMAIL_RATE_PER_ADDRESS": env_rate("ACCOUNT_EMAIL_RATE_PER_ADDRESS", "20/3600"),
    # Emailed tokens presented (verifyAccount, passwordReset), per client address.
    "ACCOUNT_TOKEN_RATE_PER_ADDRESS": env_rate("ACCOUNT_TOKEN_RATE_PER_ADDRESS", "30/3600"),
    # OAuth endpoints (/oauth/token, /oauth/introspect), per client id presented and per
    # client address. A token lives SERVICE_TOKEN_LIFETIME, so a client needs few; a
    # resource server may introspect on each of its requests.
    "OAUTH_TOKEN_RATE_PER_CLIENT": env_rate("OAUTH_TOKEN_RATE_PER_CLIENT", "30/60"),
    "OAUTH_TOKEN_RATE_PER_ADDRESS": env_rate("OAUTH_TOKEN_RATE_PER_ADDRESS", "60/60"),
    "OAUTH_INTROSPECT_RATE_PER_CLIENT": env_rate("OAUTH_INTROSPECT_RATE_PER_CLIENT", "600/60"),
    "OAUTH_INTROSPECT_RATE_PER_ADDRESS": env_rate("OAUTH_INTROSPECT_RATE_PER_ADDRESS", "600/60"),
    # Where rate limits are counted: "redis" (REDIS_URL), "database" (every process on the
    # database) or "memory" (this process only: tests).
    "RATE_LIMIT_STORE": "redis" if REDIS_URL else "database",
    # After a Redis failure, rate limits are counted in each process's memory for this many
    # seconds before Redis is tried again (one trial call).
    "RATE_LIMIT_REDIS_COOLDOWN": env_int("RATE_LIMIT_REDIS_COOLDOWN", 5, minimum=1),
    # The per-request session check from Redis (accounts/session_cache.py): the Redis it
    # uses (REDIS_URL; none turns it off), and how long an entry lives at most, seconds
    # (0 turns it off). Every change made through Gatehouse invalidates at once; a change
    # made in the database behind its back is seen within this time.
    "SESSION_CACHE_URL": REDIS_URL,
    "SESSION_CACHE_TTL": env_seconds("SESSION_CACHE_TTL", 60, minimum=0),
    # Send account emails from a background thread, so no response waits for (or reveals) a mail.
    "EMAIL_ASYNC": env_bool("EMAIL_ASYNC", True),
    # Cookie mode for browser apps: the refresh token travels in an HttpOnly cookie instead
    # of the response body. Off by default.
    "REFRESH_TOKEN_COOKIE": env_bool("REFRESH_TOKEN_COOKIE", False),
    "REFRESH_TOKEN_COOKIE_SAMESITE": env_choice("REFRESH_TOKEN_COOKIE_SAMESITE", "Lax", ("Lax", "Strict")),
    # The cookie is sent only to this path; "/" allows the stricter __Host- prefix.
    "REFRESH_TOKEN_COOKIE_PATH": env_str("REFRESH_TOKEN_COOKIE_PATH", "/graphql"),
}

# Only cookie mode needs browsers to send credentials cross-origin (to allow-listed origins).
CORS_ALLOW_CREDENTIALS = GATEHOUSE["REFRESH_TOKEN_COOKIE"]

# One line per record, control characters escaped (client input cannot forge a line); a
# client's error (4xx, DisallowedHost, TooManyFieldsSent...) is one WARNING without a
# traceback; server errors keep ERROR and their traceback. See config/logs.py.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "config.logs.EscapingFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "filters": {"client_errors": {"()": "config.logs.ClientErrorFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["client_errors"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Error responses: the status and path only, never bodies or headers.
        "django.request": {"level": "WARNING"},
    },
}
