"""Settings: the environment helpers, and production refusing to start unsafely.

The settings modules read the environment at import time, so production and local
settings are loaded in a fresh interpreter with a controlled environment."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_rate, env_required, env_str

REPO_ROOT = Path(__file__).resolve().parent.parent
VARIABLE = "GATEHOUSE_TEST_VARIABLE"

# Everything the settings read; none of it may leak in from the outer environment.
SETTINGS_VARIABLES = {
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "JWT_SIGNING_KEY",
    "JWT_PREVIOUS_SIGNING_KEYS",
    "DATABASE_STATEMENT_TIMEOUT",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY",
    "JWT_ACCESS_TOKEN_LIFETIME",
    "JWT_REFRESH_TOKEN_LIFETIME",
    "JWT_REFRESH_TOKEN_IDLE_LIFETIME",
    "REFRESH_TOKEN_REUSE_GRACE",
    "REVOKED_SESSION_RETENTION",
    "REFRESH_TOKEN_COOKIE",
    "REFRESH_TOKEN_COOKIE_SAMESITE",
    "REFRESH_TOKEN_COOKIE_PATH",
    "FRONTEND_URL",
    "DEFAULT_FROM_EMAIL",
    "ACCOUNT_ALLOW_UNVERIFIED_LOGIN",
    "ACCOUNT_DELETION",
    "EMAIL_VERIFICATION_TOKEN_LIFETIME",
    "PASSWORD_RESET_TOKEN_LIFETIME",
    "AUTH_EVENT_RETENTION",
    "EMAIL_ASYNC",
    "ACCOUNT_EMAIL_RATE_PER_RECIPIENT",
    "ACCOUNT_EMAIL_RATE_PER_ADDRESS",
    "ACCOUNT_TOKEN_RATE_PER_ADDRESS",
    "PASSWORD_CHECK_RATE_PER_ACCOUNT",
    "REDIS_KEY_PREFIX",
    "RATE_LIMIT_REDIS_COOLDOWN",
    "DEVICE_TOKEN_LIFETIME",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "EMAIL_TIMEOUT",
    "DATABASE_URL",
    "DATABASE_CONN_MAX_AGE",
    "REDIS_URL",
    "GRAPHIQL",
    "GRAPHQL_INTROSPECTION",
    "CORS_ALLOWED_ORIGINS",
    "CSRF_TRUSTED_ORIGINS",
    "TRUSTED_PROXY_COUNT",
    "LOGIN_RATE_PER_ACCOUNT",
    "LOGIN_RATE_PER_ADDRESS",
    "REGISTER_RATE_PER_ADDRESS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "STATIC_ROOT",
    "EMAIL_ALLOW_LOCAL_DOMAINS",
    "DATABASE_CONNECT_TIMEOUT",
    "DATABASE_CLIENT_TIMEOUT",
    "LOG_LEVEL",
    "JWT_ALGORITHM",
    "JWT_PRIVATE_KEY_FILE",
    "JWT_PREVIOUS_PUBLIC_KEY_FILES",
    "JWT_CLAIMS_PRESET",
    "PUBLIC_URL",
    "SERVICE_TOKEN_LIFETIME",
    "OAUTH_TOKEN_RATE_PER_CLIENT",
    "OAUTH_TOKEN_RATE_PER_ADDRESS",
    "OAUTH_INTROSPECT_RATE_PER_CLIENT",
    "OAUTH_INTROSPECT_RATE_PER_ADDRESS",
}

SECRET_KEY = "production-secret-key-" + "s" * 40
JWT_KEY = "production-jwt-signing-key-" + "j" * 40
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "JWT_SIGNING_KEY": JWT_KEY,
    "DJANGO_ALLOWED_HOSTS": "api.example.com",
}
PRINT_SETTINGS = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.GATEHOUSE['GRAPHIQL'], settings.GATEHOUSE['INTROSPECTION'], settings.DEBUG)"
)


def start_django(variables: dict, code: str = "import django; django.setup()") -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter at the repository root with only `variables` set."""
    env = {name: value for name, value in os.environ.items() if name not in SETTINGS_VARIABLES}
    env.update(variables)
    return subprocess.run(  # noqa: S603 - our own interpreter and a fixed program
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def without(name: str) -> dict:
    return {key: value for key, value in PRODUCTION.items() if key != name}


# --- config.env ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("TRUE", True),
        (" False ", False),
        ("yes", True),
        ("no", False),
        ("on", True),
        ("off", False),
    ],
)
def test_env_bool_reads_true_and_false(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_bool(VARIABLE, not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_env_bool_unset_is_the_default(monkeypatch, default):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert env_bool(VARIABLE, default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "-1", "enabled"])
def test_env_bool_refuses_anything_else(monkeypatch, raw):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_bool(VARIABLE, False)


def test_env_int_reads_a_whole_number(monkeypatch):
    monkeypatch.setenv(VARIABLE, "42")
    assert env_int(VARIABLE, 7) == 42


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_int_unset_or_blank_is_the_default(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, raw)
    assert env_int(VARIABLE, 7) == 7


def test_env_int_accepts_the_minimum(monkeypatch):
    monkeypatch.setenv(VARIABLE, "1")
    assert env_int(VARIABLE, 300, minimum=1) == 1


@pytest.mark.parametrize(("raw", "minimum"), [("0", 1), ("-5", 0), ("9", 10)])
def test_env_int_refuses_a_value_below_the_minimum(monkeypatch, raw, minimum):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_int(VARIABLE, 300, minimum=minimum)


@pytest.mark.parametrize("raw", ["ten", "1.5", "10s", "0x10"])
def test_env_int_refuses_a_non_number(monkeypatch, raw):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_int(VARIABLE, 300)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a.example.com", ["a.example.com"]),
        ("a.example.com,b.example.com", ["a.example.com", "b.example.com"]),
        (" a.example.com , b.example.com ,, ", ["a.example.com", "b.example.com"]),
        ("", []),
        (",", []),
    ],
)
def test_env_list_splits_on_commas_without_blanks(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_list(VARIABLE, ["default"]) == expected


def test_env_list_unset_is_a_copy_of_the_default(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    default = ["localhost"]
    value = env_list(VARIABLE, default)
    assert value == ["localhost"]
    value.append("x")
    assert default == ["localhost"]
    assert env_list(VARIABLE) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("10/60", (10, 60)), (" 30/300 ", (30, 300)), ("1/1", (1, 1)), ("off", None), ("OFF", None), ("none", None)],
)
def test_env_rate_reads_count_per_seconds_or_off(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_rate(VARIABLE, "5/5") == expected


def test_env_rate_unset_is_the_default(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert env_rate(VARIABLE, "20/3600") == (20, 3600)


@pytest.mark.parametrize("raw", ["ten", "10", "10/", "/60", "10/60/2", "ten/60", "10/0", "-1/60", ""])
def test_env_rate_refuses_nonsense(monkeypatch, raw):
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_rate(VARIABLE, "5/5")


def test_env_required_returns_the_value(monkeypatch):
    monkeypatch.setenv(VARIABLE, "value")
    assert env_required(VARIABLE) == "value"


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_env_required_refuses_unset_or_blank(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_required(VARIABLE)


def test_env_str_returns_the_value_or_the_default(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert env_str(VARIABLE) is None
    assert env_str(VARIABLE, "fallback") == "fallback"
    monkeypatch.setenv(VARIABLE, "set")
    assert env_str(VARIABLE, "fallback") == "set"


# --- production settings ------------------------------------------------------------------


def test_production_starts_with_its_secrets_and_turns_conveniences_off():
    # when
    result = start_django(PRODUCTION, PRINT_SETTINGS)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False"]


def test_production_can_enable_graphiql_explicitly():
    result = start_django({**PRODUCTION, "GRAPHIQL": "true"}, PRINT_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


def test_production_refuses_to_start_without_a_secret_key():
    result = start_django(without("DJANGO_SECRET_KEY"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_with_a_blank_secret_key():
    result = start_django({**PRODUCTION, "DJANGO_SECRET_KEY": "   "})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_a_jwt_signing_key():
    result = start_django(without("JWT_SIGNING_KEY"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "JWT_SIGNING_KEY" in result.stderr


def test_production_refuses_to_start_with_a_short_jwt_signing_key():
    # given: 10 bytes
    result = start_django({**PRODUCTION, "JWT_SIGNING_KEY": "0123456789"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "JWT_SIGNING_KEY" in result.stderr


def test_production_accepts_a_jwt_signing_key_of_exactly_32_bytes():
    result = start_django({**PRODUCTION, "JWT_SIGNING_KEY": "k" * 32})
    assert result.returncode == 0, result.stderr


def test_production_refuses_to_start_with_a_31_byte_jwt_signing_key():
    result = start_django({**PRODUCTION, "JWT_SIGNING_KEY": "k" * 31})
    assert result.returncode != 0
    assert "JWT_SIGNING_KEY" in result.stderr


def test_production_refuses_to_start_when_the_jwt_key_is_the_secret_key():
    result = start_django({**PRODUCTION, "JWT_SIGNING_KEY": SECRET_KEY})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "JWT_SIGNING_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = start_django(without("DJANGO_ALLOWED_HOSTS"))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_refuses_to_start_with_blank_allowed_hosts():
    result = start_django({**PRODUCTION, "DJANGO_ALLOWED_HOSTS": " , "})
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_refuses_to_start_with_a_nonsense_boolean():
    result = start_django({**PRODUCTION, "GRAPHIQL": "maybe"})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "GRAPHIQL" in result.stderr


def test_production_signs_tokens_with_its_own_key_and_hardens_https():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.GRAPHQL_JWT['JWT_SECRET_KEY'] == settings.JWT_SIGNING_KEY != settings.SECRET_KEY, "
        "settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.ALLOWED_HOSTS)"
    )
    result = start_django(PRODUCTION, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True True True ['api.example.com']"


def test_local_settings_turn_graphiql_and_introspection_on():
    # when
    result = start_django({"DJANGO_SETTINGS_MODULE": "config.settings.local"}, PRINT_SETTINGS)
    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True"]


@pytest.mark.parametrize("previous", [pytest.param("abc", id="short"), pytest.param(SECRET_KEY, id="secret-key")])
def test_production_refuses_to_start_with_a_weak_previous_signing_key(previous):
    result = start_django({**PRODUCTION, "JWT_PREVIOUS_SIGNING_KEYS": f"{'o' * 40},{previous}"})
    assert result.returncode != 0
    assert "JWT_PREVIOUS_SIGNING_KEYS" in result.stderr


def test_production_starts_with_strong_previous_signing_keys():
    result = start_django({**PRODUCTION, "JWT_PREVIOUS_SIGNING_KEYS": f"{'o' * 40},{'p' * 32}"})
    assert result.returncode == 0, result.stderr


def test_production_reads_the_session_and_cookie_settings():
    code = (
        "import django; django.setup(); from django.conf import settings; g = settings.GATEHOUSE; "
        "print(settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME, settings.REFRESH_TOKEN_REUSE_GRACE, "
        "settings.REVOKED_SESSION_RETENTION, g['REFRESH_TOKEN_COOKIE'], g['REFRESH_TOKEN_COOKIE_SAMESITE'], "
        "g['REFRESH_TOKEN_COOKIE_PATH'], settings.CORS_ALLOW_CREDENTIALS)"
    )
    variables = {
        "JWT_REFRESH_TOKEN_IDLE_LIFETIME": "3600",
        "REFRESH_TOKEN_REUSE_GRACE": "0",
        "REVOKED_SESSION_RETENTION": "86400",
        "REFRESH_TOKEN_COOKIE": "true",
        "REFRESH_TOKEN_COOKIE_SAMESITE": "strict",
        "REFRESH_TOKEN_COOKIE_PATH": "/",
    }
    result = start_django({**PRODUCTION, **variables}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3600", "0", "86400", "True", "Strict", "/", "True"]


def test_production_session_defaults():
    code = (
        "import django; django.setup(); from django.conf import settings; g = settings.GATEHOUSE; "
        "print(settings.JWT_REFRESH_TOKEN_IDLE_LIFETIME, settings.REFRESH_TOKEN_REUSE_GRACE, "
        "g['REFRESH_TOKEN_COOKIE'], g['REFRESH_TOKEN_COOKIE_SAMESITE'], g['REFRESH_TOKEN_COOKIE_PATH'], "
        "settings.CORS_ALLOW_CREDENTIALS)"
    )
    result = start_django(PRODUCTION, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["86400", "10", "False", "Lax", "/graphql", "False"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REFRESH_TOKEN_COOKIE_SAMESITE", "None"),
        ("REFRESH_TOKEN_COOKIE_SAMESITE", "lax-ish"),
        ("JWT_REFRESH_TOKEN_IDLE_LIFETIME", "0"),
        ("REFRESH_TOKEN_REUSE_GRACE", "-1"),
        ("REFRESH_TOKEN_COOKIE", "sometimes"),
    ],
)
def test_production_refuses_nonsense_session_settings(name, value):
    result = start_django({**PRODUCTION, name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


@pytest.mark.parametrize(("raw", "expected"), [("lax", "Lax"), ("STRICT", "Strict"), (" Strict ", "Strict")])
def test_env_choice_matches_ignoring_case_and_returns_the_listed_spelling(monkeypatch, raw, expected):
    monkeypatch.setenv(VARIABLE, raw)
    assert env_choice(VARIABLE, "Lax", ("Lax", "Strict")) == expected


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_env_choice_unset_or_blank_is_the_default(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, raw)
    assert env_choice(VARIABLE, "Lax", ("Lax", "Strict")) == "Lax"


def test_env_choice_refuses_anything_else(monkeypatch):
    monkeypatch.setenv(VARIABLE, "None")
    with pytest.raises(ImproperlyConfigured, match=VARIABLE):
        env_choice(VARIABLE, "Lax", ("Lax", "Strict"))


def test_production_reads_the_account_settings():
    code = (
        "import django; django.setup(); from django.conf import settings as s; g = s.GATEHOUSE; "
        "print(s.ACCOUNT_ALLOW_UNVERIFIED_LOGIN, s.ACCOUNT_DELETION, s.EMAIL_VERIFICATION_TOKEN_LIFETIME, "
        "s.PASSWORD_RESET_TOKEN_LIFETIME, s.AUTH_EVENT_RETENTION, g['EMAIL_ASYNC'], "
        "g['ACCOUNT_EMAIL_RATE_PER_RECIPIENT'], g['LOGIN_RATE_PER_ACCOUNT'], s.FRONTEND_URL, "
        "s.DEFAULT_FROM_EMAIL, s.EMAIL_BACKEND)"
    )
    variables = {
        "ACCOUNT_ALLOW_UNVERIFIED_LOGIN": "false",
        "ACCOUNT_DELETION": "deactivate",
        "EMAIL_VERIFICATION_TOKEN_LIFETIME": "600",
        "PASSWORD_RESET_TOKEN_LIFETIME": "900",
        "AUTH_EVENT_RETENTION": "86400",
        "EMAIL_ASYNC": "false",
        "ACCOUNT_EMAIL_RATE_PER_RECIPIENT": "5/60",
        "LOGIN_RATE_PER_ACCOUNT": "off",
        "FRONTEND_URL": "https://app.example.org",
        "DEFAULT_FROM_EMAIL": "auth@example.org",
    }
    result = start_django({**PRODUCTION, **variables}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False",
        "deactivate",
        "600",
        "900",
        "86400",
        "False",
        "(5,",
        "60)",
        "None",
        "https://app.example.org",
        "auth@example.org",
        "django.core.mail.backends.smtp.EmailBackend",
    ]


PRINT_RATE_SETTINGS = (
    "import django; django.setup(); from django.conf import settings as s; g = s.GATEHOUSE; "
    "print(g['LOGIN_RATE_PER_ACCOUNT'], g['LOGIN_RATE_PER_ADDRESS'], g['RATE_LIMIT_STORE'], "
    "g['RATE_LIMIT_REDIS_COOLDOWN'], s.REDIS_KEY_PREFIX, s.CACHES['default'].get('KEY_PREFIX'), "
    "s.DEVICE_TOKEN_LIFETIME, 'PASSWORD_CHECK_RATE_PER_ACCOUNT' in g, sep='|')"
)


def test_production_rate_limit_defaults_count_in_the_database_without_redis():
    result = start_django(PRODUCTION, PRINT_RATE_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "(10, 360)",
        "(30, 60)",
        "database",
        "5",
        "gatehouse",
        "None",
        "31536000",
        "False",
    ]


def test_production_rate_limits_count_in_redis_under_the_prefix_the_cache_uses_too():
    variables = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_KEY_PREFIX": "deployment-b",
        "RATE_LIMIT_REDIS_COOLDOWN": "9",
        "DEVICE_TOKEN_LIFETIME": "86400",
        "LOGIN_RATE_PER_ACCOUNT": "100/3600",
        # retired: read by nothing (`manage.py check` warns, gatehouse.W007)
        "PASSWORD_CHECK_RATE_PER_ACCOUNT": "3/60",
    }
    result = start_django({**PRODUCTION, **variables}, PRINT_RATE_SETTINGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "(100, 3600)",
        "(30, 60)",
        "redis",
        "9",
        "deployment-b",
        "deployment-b",
        "86400",
        "False",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [("RATE_LIMIT_REDIS_COOLDOWN", "0"), ("DEVICE_TOKEN_LIFETIME", "59"), ("DEVICE_TOKEN_LIFETIME", "x")],
)
def test_production_refuses_nonsense_rate_limit_settings(name, value):
    result = start_django({**PRODUCTION, name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_production_account_defaults_send_mail_in_the_background():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ACCOUNT_ALLOW_UNVERIFIED_LOGIN, s.ACCOUNT_DELETION, s.GATEHOUSE['EMAIL_ASYNC'])"
    )
    result = start_django(PRODUCTION, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "delete", "True"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("ACCOUNT_DELETION", "erase"), ("PASSWORD_RESET_TOKEN_LIFETIME", "59"), ("EMAIL_ASYNC", "later")],
)
def test_production_refuses_nonsense_account_settings(name, value):
    result = start_django({**PRODUCTION, name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_production_sends_mail_through_the_configured_smtp_server():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, "
        "s.EMAIL_USE_TLS, s.EMAIL_TIMEOUT)"
    )
    variables = {
        "EMAIL_HOST": "smtp.example.org",
        "EMAIL_PORT": "587",
        "EMAIL_HOST_USER": "mailer",
        "EMAIL_HOST_PASSWORD": "smtp-secret",
        "EMAIL_USE_TLS": "true",
        "EMAIL_TIMEOUT": "7",
    }
    result = start_django({**PRODUCTION, **variables}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.example.org",
        "587",
        "mailer",
        "smtp-secret",
        "True",
        "7",
    ]


def test_production_gives_up_on_a_stalled_mail_server_by_default():
    code = "import django; django.setup(); from django.conf import settings as s; print(s.EMAIL_TIMEOUT)"
    result = start_django(PRODUCTION, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "10"


def test_local_development_prints_mail_to_the_console_at_once():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EMAIL_BACKEND, s.GATEHOUSE['EMAIL_ASYNC'])"
    )
    result = start_django({"DJANGO_SETTINGS_MODULE": "config.settings.local"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.core.mail.backends.console.EmailBackend", "False"]
