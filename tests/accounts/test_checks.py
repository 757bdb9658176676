"""System checks that refuse an unsafe JWT key and warn about development conveniences."""

import pytest
from django.conf import settings
from django.core.checks import Error, Warning, run_checks
from django.test import override_settings

SAFE_KEY = "a-safe-jwt-signing-key-that-is-long-enough-0123456789"


def gatehouse_issues(**kwargs) -> dict:
    """Return Gatehouse's own check messages, by id."""
    return {issue.id: issue for issue in run_checks(tags=["security"], **kwargs) if issue.id.startswith("gatehouse.")}


def test_the_test_settings_pass_the_key_checks():
    issues = gatehouse_issues()
    assert "gatehouse.E001" not in issues
    assert "gatehouse.E002" not in issues


@override_settings(JWT_SIGNING_KEY=SAFE_KEY)
def test_a_long_distinct_key_passes():
    assert gatehouse_issues() == {}


@override_settings(JWT_SIGNING_KEY="short")
def test_a_short_key_is_error_e001():
    issues = gatehouse_issues()
    assert list(issues) == ["gatehouse.E001"]
    assert isinstance(issues["gatehouse.E001"], Error)
    assert issues["gatehouse.E001"].is_serious()


@pytest.mark.parametrize(
    ("key", "refused"),
    [
        ("", True),
        ("k" * 31, True),
        ("k" * 32, False),
        ("é" * 16, False),  # 16 characters, 32 bytes: the limit is in bytes
        ("é" * 15 + "k", True),  # 31 bytes
    ],
)
def test_the_key_length_is_counted_in_bytes(key, refused):
    with override_settings(JWT_SIGNING_KEY=key):
        assert ("gatehouse.E001" in gatehouse_issues()) is refused


def test_a_key_equal_to_secret_key_is_error_e002():
    # given: SECRET_KEY is long enough on its own, so only the reuse is wrong
    assert len(settings.SECRET_KEY.encode()) >= 32
    with override_settings(JWT_SIGNING_KEY=settings.SECRET_KEY):
        issues = gatehouse_issues()
    assert list(issues) == ["gatehouse.E002"]
    assert isinstance(issues["gatehouse.E002"], Error)


@override_settings(JWT_SIGNING_KEY="short", SECRET_KEY="short")
def test_a_short_key_equal_to_secret_key_is_both_errors():
    assert set(gatehouse_issues()) == {"gatehouse.E001", "gatehouse.E002"}


def test_graphiql_and_introspection_warn_in_deployment_checks():
    # given
    with override_settings(
        JWT_SIGNING_KEY=SAFE_KEY, GATEHOUSE={**settings.GATEHOUSE, "GRAPHIQL": True, "INTROSPECTION": True}
    ):
        # when
        issues = gatehouse_issues(include_deployment_checks=True)
    # then
    assert {"gatehouse.W001", "gatehouse.W002"} <= set(issues)
    assert isinstance(issues["gatehouse.W001"], Warning)
    assert isinstance(issues["gatehouse.W002"], Warning)
    assert "gatehouse.E001" not in issues
    assert "gatehouse.E002" not in issues


@pytest.mark.parametrize(("graphiql", "introspection"), [(True, False), (False, True)])
def test_each_convenience_has_its_own_warning(graphiql, introspection):
    config = {**settings.GATEHOUSE, "GRAPHIQL": graphiql, "INTROSPECTION": introspection}
    with override_settings(GATEHOUSE=config):
        issues = gatehouse_issues(include_deployment_checks=True)
    assert ("gatehouse.W001" in issues) is graphiql
    assert ("gatehouse.W002" in issues) is introspection


def test_deployment_warnings_are_not_raised_without_deploy():
    config = {**settings.GATEHOUSE, "GRAPHIQL": True, "INTROSPECTION": True}
    with override_settings(GATEHOUSE=config):
        issues = gatehouse_issues()
    assert "gatehouse.W001" not in issues
    assert "gatehouse.W002" not in issues


def test_a_safe_deployment_has_no_gatehouse_issue(monkeypatch):
    # given: conveniences off, short tokens, a shared cache, persistent connections, mail
    # after the response (CONN_MAX_AGE is patched in place: overriding DATABASES is
    # unsupported by Django)
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 600)
    config = {**settings.GATEHOUSE, "GRAPHIQL": False, "INTROSPECTION": False, "EMAIL_ASYNC": True}
    caches = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x"}}
    with override_settings(
        JWT_SIGNING_KEY=SAFE_KEY,
        GATEHOUSE=config,
        JWT_ACCESS_TOKEN_LIFETIME=300,
        CACHES=caches,
    ):
        # when
        issues = gatehouse_issues(include_deployment_checks=True)
    # then
    assert issues == {}


@override_settings(JWT_ACCESS_TOKEN_LIFETIME=3601)
def test_long_lived_access_tokens_warn_w003():
    assert "gatehouse.W003" in gatehouse_issues(include_deployment_checks=True)


def test_a_per_process_cache_warns_w004():
    # The test settings use LocMemCache.
    assert "gatehouse.W004" in gatehouse_issues(include_deployment_checks=True)


def test_non_persistent_database_connections_warn_w005(monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)
    assert "gatehouse.W005" in gatehouse_issues(include_deployment_checks=True)


@pytest.mark.parametrize(
    "previous",
    [
        pytest.param(["abc"], id="short"),
        pytest.param([settings.SECRET_KEY], id="secret-key"),
        pytest.param([SAFE_KEY, "x" * 31], id="one-of-two-short"),
    ],
)
def test_a_weak_previous_signing_key_is_error_e003(previous):
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "JWT_PREVIOUS_SIGNING_KEYS": previous}):
        issues = gatehouse_issues()
    assert "gatehouse.E003" in issues
    assert isinstance(issues["gatehouse.E003"], Error)


def test_strong_previous_signing_keys_pass():
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "JWT_PREVIOUS_SIGNING_KEYS": [SAFE_KEY, "y" * 32]}):
        assert "gatehouse.E003" not in gatehouse_issues()


def test_mail_inside_the_request_warns_w006():
    # Then a reset request for an existing address costs the request the mail server's time.
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "EMAIL_ASYNC": False}, DEBUG=False):
        assert "gatehouse.W006" in gatehouse_issues(include_deployment_checks=True)
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "EMAIL_ASYNC": True}, DEBUG=False):
        assert "gatehouse.W006" not in gatehouse_issues(include_deployment_checks=True)


def test_mail_inside_the_request_is_fine_while_debugging():
    with override_settings(GATEHOUSE={**settings.GATEHOUSE, "EMAIL_ASYNC": False}, DEBUG=True):
        assert "gatehouse.W006" not in gatehouse_issues(include_deployment_checks=True)
