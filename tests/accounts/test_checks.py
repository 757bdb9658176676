"""System checks that refuse an unsafe JWT key or uncollected static files, and warn about development conveniences."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.test import override_settings

from tests.live import production_env

SAFE_KEY = "a-safe-jwt-signing-key-that-is-long-enough-0123456789"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent


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


def test_rate_limits_without_redis_warn_w004():
    # The test settings use LocMemCache and count rate limits in the database.
    assert "gatehouse.W004" in gatehouse_issues(include_deployment_checks=True)


def test_per_process_rate_limits_warn_w004(settings):
    settings.GATEHOUSE = {**settings.GATEHOUSE, "RATE_LIMIT_STORE": "memory"}
    warnings = [issue for issue in run_checks(include_deployment_checks=True) if issue.id == "gatehouse.W004"]
    assert [warning.msg for warning in warnings] == ["Rate limits are kept per process."]


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


# --- gatehouse.E010: production's manifest storage without its collected static files ----------

MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


def static_manifest_issues() -> dict:
    """Return the deployment check messages of the static files, by id."""
    return {issue.id: issue for issue in run_checks(tags=["staticfiles"], include_deployment_checks=True)}


@pytest.fixture
def manifest_storage(tmp_path):
    """Production's kind of storage (a manifest of hashed names) over an empty STATIC_ROOT."""
    with override_settings(STATIC_ROOT=tmp_path / "static", STORAGES=MANIFEST_STORAGES):
        yield tmp_path / "static" / "staticfiles.json"


def test_uncollected_static_files_are_error_e010(manifest_storage):
    issues = static_manifest_issues()
    assert list(issues) == ["gatehouse.E010"]
    assert isinstance(issues["gatehouse.E010"], Error)
    assert str(manifest_storage) in issues["gatehouse.E010"].msg
    assert "collectstatic" in issues["gatehouse.E010"].hint


def test_collected_static_files_pass(manifest_storage):
    # when
    call_command("collectstatic", interactive=False, verbosity=0)
    # then
    assert manifest_storage.exists()
    assert static_manifest_issues() == {}


def test_a_manifest_of_other_code_is_error_e010(manifest_storage):
    # given: collected, then the admin's stylesheet dropped from the manifest (an older release's)
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = json.loads(manifest_storage.read_text())
    del manifest["paths"]["admin/css/base.css"]
    manifest_storage.write_text(json.dumps(manifest))
    # when
    issues = static_manifest_issues()
    # then
    assert list(issues) == ["gatehouse.E010"]
    assert "admin/css/base.css" in issues["gatehouse.E010"].msg


def test_an_unreadable_manifest_is_error_e010(manifest_storage):
    manifest_storage.parent.mkdir(parents=True)
    manifest_storage.write_text("{not json")
    assert list(static_manifest_issues()) == ["gatehouse.E010"]


def test_the_static_files_check_is_for_deployments_only(manifest_storage):
    # migrate and collectstatic run the other checks: they must work before anything is collected
    assert "gatehouse.E010" not in {issue.id for issue in run_checks(tags=["staticfiles"])}


def test_a_storage_without_a_manifest_needs_no_collected_files():
    # The test and local settings serve static files from the apps themselves.
    assert "gatehouse.E010" not in static_manifest_issues()


def manage(env: dict, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *arguments], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_fails_until_collectstatic(tmp_path):
    # given: production settings, nothing collected
    env = production_env(tmp_path)
    # when
    before = manage(env, "check", "--deploy", "--fail-level", "ERROR")
    # then
    assert before.returncode != 0
    assert "gatehouse.E010" in before.stderr
    # and migrate and collectstatic themselves work without the manifest
    assert manage(env, "migrate", "--noinput", "-v0").returncode == 0
    assert manage(env, "collectstatic", "--noinput", "-v0").returncode == 0
    after = manage(env, "check", "--deploy", "--fail-level", "ERROR")
    assert after.returncode == 0, after.stderr
    assert "gatehouse.E010" not in after.stderr


def test_the_server_refuses_to_start_without_collected_static_files(tmp_path):
    # given: migrated, nothing collected
    env = production_env(tmp_path)
    assert manage(env, "migrate", "--noinput", "-v0").returncode == 0
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # when: the shipped server command
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own server command
        [str(gunicorn), "-c", "config/gunicorn.py", "config.wsgi:application"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then: it stops on its own, non-zero, with one line that says what to do
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    output = (result.stdout + result.stderr).splitlines()
    refusals = [line for line in output if "Refusing to start" in line]
    assert len(refusals) == 1, output
    assert "gatehouse.E010" in refusals[0]
    assert "collectstatic" in refusals[0]
    assert not [line for line in output if "Traceback" in line or "Warning" in line], output


# --- gatehouse.W007: a retired rate setting left in the environment -----------------------------


def test_the_retired_password_check_rate_warns_w007_that_it_is_ignored(monkeypatch):
    # given
    monkeypatch.setenv("PASSWORD_CHECK_RATE_PER_ACCOUNT", "10/300")
    # when
    issues = gatehouse_issues()
    # then: without --deploy too, and it names the budget that replaced it
    assert isinstance(issues["gatehouse.W007"], Warning)
    assert "ignored" in issues["gatehouse.W007"].msg
    assert "LOGIN_RATE_PER_ACCOUNT" in issues["gatehouse.W007"].msg


def test_no_retired_setting_no_w007(monkeypatch):
    monkeypatch.delenv("PASSWORD_CHECK_RATE_PER_ACCOUNT", raising=False)
    assert "gatehouse.W007" not in gatehouse_issues(include_deployment_checks=True)


def test_deploy_warns_when_the_metadata_issuer_is_not_the_public_url():
    def ids():
        return {issue.id for issue in run_checks(include_deployment_checks=True, tags=["security"])}

    with override_settings(PUBLIC_URL="https://auth.example.com"):
        [issue] = [i for i in run_checks(include_deployment_checks=True, tags=["security"]) if i.id == "gatehouse.W009"]
        assert isinstance(issue, Warning)
        assert "'gatehouse'" in issue.msg
    jwt = {**settings.GRAPHQL_JWT, "JWT_ISSUER": "https://auth.example.com"}
    with override_settings(PUBLIC_URL="https://auth.example.com", GRAPHQL_JWT=jwt):
        assert "gatehouse.W009" not in ids()
    with override_settings(PUBLIC_URL=""):
        assert "gatehouse.W009" not in ids()
